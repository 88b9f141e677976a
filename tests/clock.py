"""The one clock of the test suite: every test that needs "now" uses this instant; nothing reads the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    """``n`` days before ``NOW``."""
    return NOW - timedelta(days=n)
