"""Feedback endpoint and card recording (issue 7).

``register`` opens the store named by ``Settings.database_url`` and adds
``POST /cds-services/<id>/feedback``. A database that is down at start does not stop the CDS service:
the store is retried in the background, ``readiness`` (used by /readyz) says why it is unavailable, and
the endpoint answers 503 meanwhile. Once the store has opened, a later outage of the (shared) database
leaves the worker ready: the calls that need the database answer 503 with ``Retry-After`` themselves,
rather than every replica leaving the load balancer at once. Authentication is installed globally by the
security layer.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from flask import Flask, Response, current_app, has_app_context, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from cds_service.config import ConfigError, Settings
from cds_service.feedback.store import CardShown, FeedbackStore, FeedbackStoreError, engine_url
from cds_service.feedback.validation import FeedbackInvalid, feedback_validator, parse_feedback
from cds_service.feedback.writer import SILENT, CardWriter, WriterObserver, WriterStats
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.errors import HookError, Issue, operation_outcome
from cds_service.observability import metrics
from cds_service.observability.audit import current_audit
from cds_service.web.body import read_json_body

log = logging.getLogger(__name__)

EXTENSION_KEY = "ketamine_feedback"
MAX_FEEDBACK_BYTES = 1024 * 1024
RETRY_OPEN_SECONDS = 10.0


class FeedbackRuntime:
    """The app's store and card writer; opens (and re-tries opening) the database in the background."""

    def __init__(self, database_url: str, *, retry_seconds: float = RETRY_OPEN_SECONDS,
                 observer: WriterObserver = SILENT) -> None:
        engine_url(database_url)  # a malformed URL is a configuration error: fail at start
        self.database_url = database_url
        self.retry_seconds = retry_seconds
        self.observer = observer
        self._store: FeedbackStore | None = None
        self._writer: CardWriter | None = None
        self._error: str | None = "feedback store not opened yet"
        self._dropped_while_closed = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the store now; on failure, keep trying in a background thread."""
        if not self._try_open():
            threading.Thread(target=self._retry_loop, name="ketamine-cds-feedback-open", daemon=True).start()

    def _try_open(self) -> bool:
        try:
            store = FeedbackStore.open(self.database_url)
        except FeedbackStoreError as exc:
            self._error = str(exc)
            log.warning("feedback store not available (retrying every %.0f s): %s", self.retry_seconds, exc)
            return False
        with self._lock:
            if self._closed.is_set():
                store.close()
                return True
            self._store, self._writer, self._error = store, CardWriter(store, observer=self.observer), None
        return True

    def _retry_loop(self) -> None:
        while not self._closed.wait(self.retry_seconds):
            if self._try_open():
                log.info("feedback store available")
                return

    @property
    def store(self) -> FeedbackStore | None:
        return self._store

    @property
    def writer(self) -> CardWriter | None:
        return self._writer

    def record(self, cards: Sequence[CardShown]) -> None:
        writer = self._writer
        if writer is None:
            with self._lock:
                self._dropped_while_closed += len(cards)
            self.observer.unrecorded("store-unavailable", len(cards))
            return
        writer.submit(cards)

    def card_stats(self) -> WriterStats:
        """Cards written, dropped (queue full or store unavailable), failed and pending: for metrics."""
        writer = self._writer
        base = writer.stats() if writer is not None else WriterStats(0, 0, 0, 0)
        with self._lock:
            return replace(base, dropped=base.dropped + self._dropped_while_closed)

    def ping(self) -> str | None:
        store = self._store
        if store is None:
            return self._error or "feedback store unavailable"
        return store.ping()

    def readiness(self) -> tuple[bool, str]:
        """(ready, what /readyz reports). Not ready until the store has opened once; after that, never
        because of the database (no live ping, which could outlast the probe's timeout), but the last card
        write's failure is reported as ``degraded``."""
        if self._store is None:
            return False, self._error or "feedback store not opened yet"
        writer = self._writer
        failure = writer.last_failure() if writer is not None else None
        return True, "ok" if failure is None else f"degraded: the last card write failed ({failure})"

    def close(self) -> None:
        """Flush queued cards and release connections. Idempotent."""
        with self._lock:
            self._closed.set()
            writer, store = self._writer, self._store
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()


def register(app: Flask, settings: Settings, *, start: bool = True) -> None:
    """Register POST /cds-services/<id>/feedback and open the feedback store (``start=False``: not yet)."""
    try:
        runtime = FeedbackRuntime(settings.database_url, observer=metrics.FEEDBACK_WRITER)
    except FeedbackStoreError as exc:
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
    cards: list[tuple[str, str, str]],
    *,
    now: datetime | None = None,
) -> None:
    """Record returned cards as (uuid, topic code, indicator): no patient data. Never blocks.

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
