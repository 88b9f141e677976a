"""Client JWT authentication on the CDS endpoints (issue 6)."""

from __future__ import annotations

from flask import Flask

from cds_service.config import Settings


def install(app: Flask, settings: Settings) -> None:
    """Verify the client's JWT before discovery, service and feedback calls (OPTIONS exempt)."""
