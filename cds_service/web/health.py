"""Liveness and readiness endpoints (issue 8).

``GET /healthz``: the process answers HTTP (liveness; never touches a dependency, so a slow database
does not get every pod restarted). ``GET /readyz``: the knowledge base is loaded and complete, and the
feedback store has opened (readiness; a failing pod is taken out of the load balancer, not restarted).
The database is shared by every replica: once the store has opened, an outage is reported as
``degraded`` but the pod stays ready, so the service itself answers the calls that need the database
(503 with ``Retry-After``) instead of every replica leaving the load balancer at once (the ingress's 502).
Both are outside ``/cds-services``, so client JWT authentication does not apply to them. Bodies carry
check names and short reasons only.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify

from cds_service.config import Settings
from cds_service.knowledge.model import Knowledge
from cds_service.web import feedback

KB_EXTENSION = "ketamine_kb"
_log = logging.getLogger(__name__)

# Value sets and topics every rule set needs (the interface list of the project brief).
REQUIRED_VALUESETS: tuple[str, ...] = (
    "depression",
    "bipolar",
    "bipolar-depression",
    "ptsd",
    "chronic-pain-crps",
    "chronic-pain-sci",
    "chronic-pain-other",
    "suicidal-ideation",
    "psychosis",
    "psychotic-features",
    "ketamine-misuse",
    "substance-use",
    "cardiovascular",
    "hypertensive-crisis",
    "hepatic",
    "intracranial-pressure",
    "intraocular-pressure",
    "pregnancy",
)
REQUIRED_TOPICS: tuple[str, ...] = ("eligibility-summary",)
REQUIRED_ROLES: tuple[str, ...] = ("ketamine", "esketamine", "antidepressant")


def register(app: Flask, settings: Settings) -> None:
    """Register /healthz and /readyz."""
    del settings
    app.add_url_rule("/healthz", endpoint="healthz", view_func=_healthz, methods=["GET"])
    app.add_url_rule("/readyz", endpoint="readyz", view_func=_readyz, methods=["GET"])


def knowledge_problem(kb: object) -> str | None:
    """None when ``kb`` is a usable knowledge base, else a short reason (no PHI; names only)."""
    if kb is None:
        return "knowledge base not loaded"
    if not isinstance(kb, Knowledge):
        return f"knowledge base has the wrong type ({type(kb).__name__})"
    if not kb.version:
        return "knowledge base has no version"
    if not kb.thresholds:
        return "knowledge base has no thresholds"
    missing_vs = [k for k in REQUIRED_VALUESETS if k not in kb.valuesets]
    if missing_vs:
        return "value sets missing: " + ", ".join(missing_vs)
    missing_topics = [t for t in REQUIRED_TOPICS if t not in kb.topics]
    if missing_topics:
        return "topics missing: " + ", ".join(missing_topics)
    roles = {role for ing in kb.medications.ingredients.values() for role in ing.roles}
    missing_roles = [r for r in REQUIRED_ROLES if r not in roles]
    if missing_roles:
        return "medication roles missing: " + ", ".join(missing_roles)
    return None


def feedback_readiness(app: Flask) -> tuple[bool, str]:
    """(ready, what to report) for the feedback store: ready once it has opened; a later outage of the
    shared database is reported as degraded, not as unready (``FeedbackRuntime.readiness``)."""
    try:
        return feedback.readiness(app)
    except Exception as exc:  # the store's own error text may hold a DSN: report the type only
        _log.warning("feedback store readiness check raised %s", type(exc).__name__)
        return False, f"feedback store check failed ({type(exc).__name__})"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _healthz() -> Response:
    return _no_store(jsonify({"status": "ok"}))


def _readyz() -> tuple[Response, int]:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    kb = app.extensions.get(KB_EXTENSION)
    kb_reason = knowledge_problem(kb)
    store_ready, store_report = feedback_readiness(app)
    ready = kb_reason is None and store_ready
    body: dict[str, Any] = {
        "status": "ready" if ready else "not-ready",
        "checks": {
            "knowledge": kb_reason or "ok",
            "feedbackStore": store_report,
        },
    }
    if isinstance(kb, Knowledge):
        body["knowledgeVersion"] = kb.version
    return _no_store(jsonify(body)), 200 if ready else 503
