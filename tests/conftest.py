"""Shared test fixtures: a fixed clock and the bundled knowledge base."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

# Every test that needs "now" uses this instant; nothing reads the wall clock.
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def kb():  # type: ignore[no-untyped-def]
    from cds_service.knowledge.loader import load_knowledge

    return load_knowledge()
