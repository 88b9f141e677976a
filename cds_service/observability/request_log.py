"""Structured JSON logs: one line per request, and a JSON formatter for every other logger.

The request line (logger ``ketamine_cds.request``) is built only from the ``RequestAudit`` of the request
(service id, hook, hookInstance, topic codes, card uuids, indicators, phase timings, client ``iss``) plus the
method, the route *template* (``/cds-services/<service_id>``, never the raw path or query string), the
status and the total time. Patient ids, names, resource contents, tokens and bodies never reach it.

Other places that could leak, and what this module does about them:

- exception logging (Flask's ``log_exception``, ``log.exception``): ``JsonFormatter`` writes the exception
  *type* and the stack frames (file, line, function), never the exception message or local values, because
  messages of ``KeyError``/``ValueError`` often quote the data that failed;
- werkzeug's development-server access log and gunicorn's access log print the request line: the
  ``RedactFilter`` installed on ``werkzeug`` and ``gunicorn.access`` removes query strings; with gunicorn,
  prefer ``--access-logformat`` ``GUNICORN_ACCESS_LOG_FORMAT`` (path without query) or no access log at all,
  since this request log already covers every request;
- ``urllib3`` debug/warning lines name the URLs fetched from the EHR's FHIR server (``/Patient/<id>``): the
  filter cuts every such message before its first URL path or quoted request line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request, request_started

from cds_service.config import Settings
from cds_service.observability.audit import current_audit

REQUEST_LOGGER = "ketamine_cds.request"
# gunicorn access-log format without the query string (%(U)s is the path only); see the module docstring.
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)sus'
SERVICE_LOGGERS = ("cds_service", "ketamine_cds")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_URL_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
                "urllib3.response", "urllib3.util.retry")
_ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")
_QUERY = re.compile(r"\?[^\s\"']*")
_BASE_KEYS = frozenset({"ts", "level", "logger", "msg"})

log = logging.getLogger(REQUEST_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the record's ``cds`` extras, exception type/frames."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "cds", None)
        if isinstance(extra, Mapping):
            out.update({k: v for k, v in extra.items() if k not in _BASE_KEYS})
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            out["exc_type"] = exc_type.__name__
            out["exc_frames"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)][-20:]
        return json.dumps(out, default=str, ensure_ascii=False)

    def formatException(self, ei: Any) -> str:
        # Only reached by handlers that reuse this formatter's parent machinery: never the message.
        return ei[0].__name__ if ei and ei[0] else ""


class RedactFilter(logging.Filter):
    """Rewrites third-party records that carry URLs: no query strings; for urllib3, no URL at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep nothing of it
            message = "(unformattable log message)"
        if record.name.startswith("urllib3"):
            cut = re.split(r"[\"/?]", message, maxsplit=1)
            message = cut[0].rstrip() + (" [url redacted]" if len(cut) > 1 else "")
        else:
            message = _QUERY.sub("?[redacted]", message)
        record.msg, record.args = message, None
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (survives stream swaps by test runners)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value


def configure_logging(level: str = "INFO") -> None:
    """JSON logs on stderr for the service (idempotent); redaction filters on URL-logging libraries.

    The root handler is added only when nothing configured logging before (gunicorn leaves the root
    logger alone; a deployment's own ``logging`` config wins).
    """
    redact = RedactFilter()
    for name in (*_URL_LOGGERS, *_ACCESS_LOGGERS):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(redact)
    root = logging.getLogger()
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(redact)
        root.addHandler(handler)
    resolved = logging.getLevelName(level.upper())
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).setLevel(resolved if isinstance(resolved, int) else logging.INFO)


def _safe_id(value: str | None) -> str | None:
    if value is None:
        return None
    return value if _SAFE_ID.match(value) else "[invalid]"


def request_fields(status: int, total_ms: float | None) -> dict[str, Any]:
    """The fields of the request line for the current request."""
    audit = current_audit()
    rule = request.url_rule.rule if request.url_rule is not None else None
    return {
        "event": "request",
        "method": request.method,
        "route": rule,
        "status": status,
        "service_id": _safe_id(audit.service_id),
        "hook": _safe_id(audit.hook),
        "hook_instance": _safe_id(audit.hook_instance),
        "topics": list(audit.topics),
        "card_uuids": list(audit.card_uuids),
        "indicators": list(audit.indicators),
        "phases_ms": dict(audit.phases_ms),
        "total_ms": total_ms,
        "client_iss": audit.client_iss,
        "note": audit.note,
    }


def _emit(status: int) -> None:
    if g.get("_request_logged"):
        return
    g._request_logged = True
    if request.path in QUIET_PATHS:
        level = logging.DEBUG
    elif status >= 500:
        level = logging.ERROR
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):  # e.g. KETAMINE_CDS_LOG_LEVEL=WARNING: no line, so no fields to build
        return
    start = g.get("_request_start")
    total_ms = round((time.perf_counter() - start) * 1000, 3) if start is not None else None
    log.log(level, "request", extra={"cds": request_fields(status, total_ms)})


def install(app: Flask, settings: Settings) -> None:
    """Log one JSON line per request from the RequestAudit; never PHI, tokens or bodies."""
    configure_logging(settings.log_level)

    def _start(sender: Flask, **_: Any) -> None:
        g._request_start = time.perf_counter()

    request_started.connect(_start, app, weak=False)

    @app.after_request
    def _log_request(response: Response) -> Response:
        _emit(response.status_code)
        return response

    @app.teardown_request
    def _log_failed_request(exc: BaseException | None) -> None:
        if exc is not None:
            _emit(500)
