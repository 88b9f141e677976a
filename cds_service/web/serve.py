"""``ketamine-cds serve``: the service under the production WSGI server (being implemented)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the serve subcommand."""
    del sub
