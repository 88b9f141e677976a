"""Prometheus metrics (issue 8). Call sites use these functions; they stay cheap and never raise."""

from __future__ import annotations

from flask import Flask

from cds_service.config import Settings


def install(app: Flask, settings: Settings) -> None:
    """Register /metrics and the request count/latency instrumentation."""


def observe_cards(service_id: str, topics_and_indicators: list[tuple[str, str]]) -> None:
    """Count cards returned, per topic code and indicator."""


def observe_fhir_fetch(outcome: str, seconds: float) -> None:
    """A FHIR fallback fetch: outcome is "ok" or a failure kind ("timeout", "http-500", ...)."""


def observe_jwt_rejection(reason: str) -> None:
    """A client JWT rejected, by reason ("expired", "bad-signature", ...)."""
