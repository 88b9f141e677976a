"""Prometheus metrics (issue 8). Call sites use these functions; they stay cheap and never raise.

Single-process (tests, ``flask run``): the default registry. Under gunicorn with several workers,
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty writable directory *before the server starts* (the image
does): every worker then writes its samples to memory-mapped files there and ``/metrics`` aggregates
all workers. The gunicorn master calls :func:`prepare_multiprocess_dir` when it starts and
:func:`gunicorn_child_exit` (the ``child_exit`` server hook) when a worker exits.

Labels are bounded: service ids, Flask endpoint names, topic codes, indicators and short reason codes.
No patient data, URL paths or client names ever become a label.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from cds_service.config import Settings
from cds_service.observability.audit import current_audit
from cds_service.observability.filesystem import directory_write_problem

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_log = logging.getLogger(__name__)

# Sub-second buckets: the EHR gives up after about a second (the spec asks for ~500 ms).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "ketamine_cds_http_requests",
    "HTTP requests answered, by endpoint, CDS service id and status code.",
    ["endpoint", "service", "status"],
)
HTTP_LATENCY = Histogram(
    "ketamine_cds_http_request_duration_seconds",
    "Time from request start to response, by endpoint, CDS service id and status code.",
    ["endpoint", "service", "status"],
    buckets=_LATENCY_BUCKETS,
)
CARDS = Counter(
    "ketamine_cds_cards",
    "Cards returned, by CDS service id, rule topic code and indicator.",
    ["service", "topic", "indicator"],
)
FHIR_FETCHES = Counter(
    "ketamine_cds_fhir_fetches",
    "FHIR fallback fetches (prefetch absent), by outcome: ok or a failure kind.",
    ["outcome"],
)
FHIR_FETCH_LATENCY = Histogram(
    "ketamine_cds_fhir_fetch_duration_seconds",
    "Duration of one FHIR fallback fetch (all pages of one prefetch key), by outcome.",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
)
JWT_REJECTIONS = Counter(
    "ketamine_cds_jwt_rejections",
    "Client JWTs rejected, by reason.",
    ["reason"],
)

FEEDBACK_CARDS = Counter(
    "ketamine_cds_feedback_cards",
    "Cards returned, by what became of their record in the feedback store: recorded, or not (their feedback "
    "will be unattributed) because the writer's queue was full, the write failed, the store was unavailable "
    "or the worker was shutting down.",
    ["outcome"],
)
FEEDBACK_OUTCOMES = ("recorded", "queue-full", "write-failed", "store-unavailable", "closed")


@functools.cache
def _feedback_queue_depth() -> Gauge:
    """The queue-depth gauge, made on first use: a metric without labels opens its multi-process file when
    it is made, and this module is imported by the gunicorn master before the directory exists."""
    return Gauge(
        "ketamine_cds_feedback_queue_depth",
        "Hook calls whose cards wait in the feedback writer's queue (summed over the live workers).",
        multiprocess_mode="livesum",
    )


_LABEL_OK = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Per-call label children, keyed by the raw label values. ``Metric.labels`` checks and locks on every call;
# these dictionaries skip that for label sets already seen. Bounded: the values come from bounded sets
# (endpoints, service ids, status codes, topic codes, indicators), and past the cap nothing more is cached.
_MAX_CACHED_CHILDREN = 1024
_MULTIPROC_PROBLEM: str | None = None  # set by install(): why this worker's samples cannot be kept
_SERVICE_IDS: frozenset[str] = frozenset()  # set by install(): the app's CDS services
_REQUEST_CHILDREN: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_CARD_CHILDREN: dict[tuple[str, str, str], Any] = {}


def _label(value: object, default: str = "other") -> str:
    """A label value safe for Prometheus and bounded in length; anything odd becomes ``default``."""
    text = str(value) if value is not None else ""
    return text if _LABEL_OK.fullmatch(text) else default


def multiprocess_enabled() -> bool:
    """True when samples are shared between worker processes (``PROMETHEUS_MULTIPROC_DIR`` is set)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def multiprocess_problem() -> str | None:
    """Why the multi-process directory cannot hold this process's samples (created if missing), or None.

    Without a writable directory prometheus_client records nothing, and a scrape would find no files:
    an empty 200 that looks like an idle service.
    """
    if not multiprocess_enabled():
        return None
    problem = directory_write_problem(Path(os.environ[MULTIPROC_ENV]))
    return f"{MULTIPROC_ENV}={problem}" if problem else None


def _registry() -> CollectorRegistry:
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render_metrics() -> bytes:
    """The Prometheus text exposition of every metric (all workers in multi-process mode)."""
    return generate_latest(_registry())


def install(app: Flask, settings: Settings, *, service_ids: Collection[str] = ()) -> None:
    """Register /metrics and the request count/latency instrumentation. ``service_ids``: the CDS services of the
    app, the only values the ``service`` label takes."""
    del settings
    global _MULTIPROC_PROBLEM, _SERVICE_IDS
    _SERVICE_IDS = frozenset(service_ids)
    # Workers never clear the directory (other workers' files live there), but create it if missing
    _MULTIPROC_PROBLEM = multiprocess_problem()
    if _MULTIPROC_PROBLEM:
        _log.error("%s: /metrics answers 503 until this is fixed", _MULTIPROC_PROBLEM)
    else:  # every feedback-card outcome and the queue depth are exported from the start, at 0
        for outcome in FEEDBACK_OUTCOMES:
            FEEDBACK_CARDS.labels(outcome)
        _feedback_queue_depth()
    if multiprocess_enabled() and values.ValueClass is values.MutexValue:
        _log.warning(
            "%s is set but prometheus_client was imported before it: each worker reports only its own "
            "samples. Set the variable in the environment before the server starts.",
            MULTIPROC_ENV,
        )

    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    # First of all before-request functions: a request that authentication rejects is timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)

    @app.after_request
    def _observe_request(response: Response) -> Response:
        try:
            started = g.pop("metrics_started", None)
            if started is not None:
                endpoint, service = _request_labels(response.status_code)
                key = (endpoint, service, str(response.status_code))
                children = _REQUEST_CHILDREN.get(key)
                if children is None:
                    children = (HTTP_REQUESTS.labels(*key), HTTP_LATENCY.labels(*key))
                    if len(_REQUEST_CHILDREN) < _MAX_CACHED_CHILDREN:
                        _REQUEST_CHILDREN[key] = children
                children[0].inc()
                children[1].observe(time.perf_counter() - started)
        except Exception:  # metrics must never break a response
            _log.debug("request metrics not recorded", exc_info=True)
        return response

    app.add_url_rule("/metrics", endpoint="metrics", view_func=_metrics_view, methods=["GET"])


def _metrics_view() -> Response:
    if _MULTIPROC_PROBLEM:  # not an empty 200: the scrape fails, so the monitoring sees it
        response = Response(f"# metrics unavailable: {_MULTIPROC_PROBLEM}\n", status=503, mimetype="text/plain")
    else:
        response = Response(render_metrics(), mimetype=None, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def _request_labels(status_code: int) -> tuple[str, str]:
    """(endpoint, service): the Flask endpoint name and, for a service of the app, its id.

    The id is the audit's (set by an endpoint once it has found the service), else the URL's only when it
    names a service of the app: an unauthenticated caller inventing paths (``/cds-services/<anything>``
    answers 401 before any lookup) must not create label values.
    """
    if request.url_rule is None or status_code == 404:
        return "unmatched", ""
    endpoint = _label(request.endpoint, "other")
    found = current_audit().service_id
    candidate: Any = (request.view_args or {}).get("service_id")
    if isinstance(found, str):
        service = _label(found, "")
    else:
        service = candidate if isinstance(candidate, str) and candidate in _SERVICE_IDS else ""
    return endpoint, service


def observe_cards(service_id: str, topics_and_indicators: list[tuple[str, str]]) -> None:
    """Count cards returned, per topic code and indicator."""
    try:
        for topic, indicator in topics_and_indicators:
            key = (service_id, topic, indicator)
            child = _CARD_CHILDREN.get(key)
            if child is None:
                child = CARDS.labels(_label(service_id), _label(topic), _label(indicator))
                if len(_CARD_CHILDREN) < _MAX_CACHED_CHILDREN:
                    _CARD_CHILDREN[key] = child
            child.inc()
    except Exception:
        _log.debug("card metrics not recorded", exc_info=True)


def observe_fhir_fetch(outcome: str, seconds: float) -> None:
    """A FHIR fallback fetch: outcome is "ok" or a failure kind ("timeout", "http-500", ...)."""
    try:
        duration = max(0.0, float(seconds))
        kind = _label(outcome)
        FHIR_FETCHES.labels(kind).inc()
        FHIR_FETCH_LATENCY.labels(kind).observe(duration)
    except Exception:
        _log.debug("FHIR fetch metrics not recorded", exc_info=True)


def observe_jwt_rejection(reason: str) -> None:
    """A client JWT rejected, by reason ("expired", "bad-signature", ...)."""
    try:
        JWT_REJECTIONS.labels(_label(reason)).inc()
    except Exception:
        _log.debug("JWT rejection metric not recorded", exc_info=True)


class _FeedbackWriterMetrics:
    """The feedback card writer's observer (``feedback.writer.WriterObserver``): counts and queue depth."""

    def recorded(self, cards: int) -> None:
        self.unrecorded("recorded", cards)

    def unrecorded(self, reason: str, cards: int) -> None:
        try:
            FEEDBACK_CARDS.labels(reason if reason in FEEDBACK_OUTCOMES else "other").inc(cards)
        except Exception:
            _log.debug("feedback card metric not recorded", exc_info=True)

    def queue_depth(self, calls: int) -> None:
        try:
            _feedback_queue_depth().set(calls)
        except Exception:
            _log.debug("feedback queue metric not recorded", exc_info=True)


FEEDBACK_WRITER = _FeedbackWriterMetrics()


# --- gunicorn integration (multi-process mode) -------------------------------------------------------


def prepare_multiprocess_dir(path: str | None = None) -> Path | None:
    """Create the multi-process directory and clear samples left by an earlier server run.

    Call once in the gunicorn master before workers start (``on_starting`` hook). Returns the directory,
    or None when multi-process mode is off or the directory is not writable (logged as an error).
    """
    raw = path or os.environ.get(MULTIPROC_ENV)
    if not raw:
        return None
    directory = Path(raw)
    problem = directory_write_problem(directory)
    if problem:
        _log.error("%s=%s: the workers cannot record metrics and /metrics will answer 503. Point it at a "
                   "directory this user can write (an emptyDir or tmpfs, one per server).", MULTIPROC_ENV, problem)
        return None
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def mark_worker_dead(pid: int) -> None:
    """Tell prometheus_client a worker exited (its live-gauge files are removed; counters are kept)."""
    if multiprocess_enabled():
        try:
            multiprocess.mark_process_dead(pid)
        except Exception:
            _log.debug("mark_process_dead failed", exc_info=True)


def gunicorn_on_starting(server: object) -> None:
    """gunicorn ``on_starting`` server hook."""
    del server
    prepare_multiprocess_dir()


def gunicorn_child_exit(server: object, worker: Any) -> None:
    """gunicorn ``child_exit`` server hook."""
    del server
    mark_worker_dead(int(worker.pid))
