"""Liveness and readiness endpoints (issue 8)."""

from __future__ import annotations

from flask import Flask

from cds_service.config import Settings


def register(app: Flask, settings: Settings) -> None:
    """Register /healthz and /readyz."""
