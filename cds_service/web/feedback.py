"""The feedback endpoint and the web app's card records (issue 7).

``register`` opens the store named by ``Settings.database_url`` (``feedback.runtime``) and adds
``POST /cds-services/<id>/feedback``; ``record_cards`` is how the web app's observer records the cards it
returned. A database that is down at start does not stop the CDS service:
the store is retried in the background, ``readiness`` (used by /readyz) says why it is unavailable, and
the endpoint answers 503 meanwhile. Once the store has opened, a later outage of the (shared) database
leaves the worker ready: the calls that need the database answer 503 with ``Retry-After`` themselves,
rather than every replica leaving the load balancer at once. Authentication is installed globally by the
security layer.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from flask import Flask, Response, current_app, has_app_context, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from cds_service.config import ConfigError, Settings
from cds_service.database import DatabaseError
from cds_service.feedback.runtime import RETRY_OPEN_SECONDS, FeedbackRuntime
from cds_service.feedback.store import CardShown
from cds_service.feedback.validation import FeedbackInvalid, feedback_validator, parse_feedback
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.errors import HookError, Issue, operation_outcome
from cds_service.observability import metrics
from cds_service.observability.audit import current_audit
from cds_service.web.body import read_json_body

log = logging.getLogger(__name__)

EXTENSION_KEY = "ketamine_feedback"
MAX_FEEDBACK_BYTES = 1024 * 1024


def register(app: Flask, settings: Settings, *, start: bool = True) -> None:
    """Register POST /cds-services/<id>/feedback and open the feedback store (``start=False``: not yet)."""
    try:
        runtime = FeedbackRuntime(settings.database_url, observer=metrics.FEEDBACK_WRITER)
    except DatabaseError as exc:
        raise ConfigError(str(exc)) from exc
    feedback_validator()  # openapi.yaml must define FeedbackRequest: fail at start, not at the first POST
    if start:
        runtime.start()
    app.extensions[EXTENSION_KEY] = runtime
    atexit.register(_close_at_exit, weakref.ref(runtime))
    app.add_url_rule(
        "/cds-services/<service_id>/feedback", "cds_feedback", _feedback_view(settings), methods=["POST"]
    )


def _close_at_exit(ref: weakref.ref[FeedbackRuntime]) -> None:
    runtime = ref()
    if runtime is not None:
        runtime.close()


def record_cards(
    service_id: str,
    hook: str,
    hook_instance: str,
    cards: Sequence[tuple[str, str, str]],
    *,
    kb_version: str,
    now: datetime | None = None,
) -> None:
    """Record returned cards as (uuid, topic code, indicator), each with the version of the knowledge base that
    made it: no patient data. Never blocks.

    Uses the current app's store; a no-op outside an app context or when feedback is not registered.
    """
    if not cards or not has_app_context():
        return
    runtime = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(runtime, FeedbackRuntime):
        return
    shown_at = now or datetime.now(UTC)
    runtime.record(
        [
            CardShown(
                card_uuid=uuid,
                service_id=service_id,
                hook=hook,
                hook_instance=hook_instance,
                topic=topic or None,
                indicator=indicator,
                shown_at=shown_at,
                kb_version=kb_version,
            )
            for uuid, topic, indicator in cards
            if uuid
        ]
    )


def ping(app: Flask) -> str | None:
    """None when the feedback store answers, else a short reason (for /readyz)."""
    runtime = app.extensions.get(EXTENSION_KEY)
    if not isinstance(runtime, FeedbackRuntime):
        return "feedback store not configured"
    return runtime.ping()


def readiness(app: Flask) -> tuple[bool, str]:
    """(ready, what /readyz reports) for the app's feedback store: see ``FeedbackRuntime.readiness``."""
    runtime = runtime_of(app)
    if runtime is None:
        return False, "feedback store not configured"
    return runtime.readiness()


def runtime_of(app: Flask) -> FeedbackRuntime | None:
    """The app's feedback runtime (store, writer), if feedback is registered."""
    runtime = app.extensions.get(EXTENSION_KEY)
    return runtime if isinstance(runtime, FeedbackRuntime) else None


def _error(status: int, issues: Sequence[Issue]) -> tuple[Response, int]:
    response = jsonify(operation_outcome(issues))
    if status == 503:
        response.headers["Retry-After"] = str(int(RETRY_OPEN_SECONDS))
    return response, status


def _feedback_view(settings: Settings) -> Callable[[str], tuple[Response, int]]:
    max_bytes = min(MAX_FEEDBACK_BYTES, settings.max_request_bytes)

    def post_feedback(service_id: str) -> tuple[Response, int]:
        if service_id not in SERVICES:
            return _error(404, [Issue(f"No CDS service {service_id!r}; see GET /cds-services", code="not-found")])
        audit = current_audit()
        audit.service_id = service_id
        try:
            body = read_json_body(request, max_bytes=max_bytes, max_depth=settings.max_json_depth)
            entries = parse_feedback(body)
        except HookError as exc:  # 400/413/415 from the shared body reader
            return _error(exc.status, exc.issues)
        except FeedbackInvalid as exc:
            return _error(400, [Issue(f"{p.location} {p.message}", expression=p.location) for p in exc.problems])
        runtime = current_app.extensions.get(EXTENSION_KEY)
        store = runtime.store if isinstance(runtime, FeedbackRuntime) else None
        if store is None:
            return _error(503, [Issue("Feedback store unavailable; retry later", code="transient")])
        try:
            result = store.add_feedback(service_id, entries, received_at=datetime.now(UTC))
        except SQLAlchemyError as exc:  # a database outage is a 503, never a 500 with a trace
            log.warning("feedback not stored: %s", type(exc).__name__)
            return _error(503, [Issue("Feedback store unavailable; retry later", code="transient")])
        audit.note = (
            f"feedback: {result.stored} stored, {result.duplicates} duplicate, {result.unknown_cards} unknown card"
        )
        return jsonify(
            {"stored": result.stored, "duplicates": result.duplicates, "unknownCards": result.unknown_cards}
        ), 200

    return post_feedback
