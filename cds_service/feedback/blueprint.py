"""Feedback endpoint and card recording (issue 7)."""

from __future__ import annotations

from flask import Flask

from cds_service.config import Settings


def register(app: Flask, settings: Settings) -> None:
    """Register POST /cds-services/<id>/feedback and open the feedback store."""


def record_cards(service_id: str, hook: str, hook_instance: str, cards: list[tuple[str, str, str]]) -> None:
    """Record returned cards as (uuid, topic code, indicator): no patient data."""
