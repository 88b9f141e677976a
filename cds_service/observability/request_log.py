"""One structured JSON log line per request (issue 6)."""

from __future__ import annotations

from flask import Flask

from cds_service.config import Settings


def install(app: Flask, settings: Settings) -> None:
    """Log one JSON line per request from the RequestAudit; never PHI, tokens or bodies."""
