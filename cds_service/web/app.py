"""The Flask app factory: routes of the CDS Hooks protocol, error handling and the hooks of the other
layers (security, request log, metrics, feedback, health)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.client import new_session
from cds_service.hooks.catalog import SERVICES, discovery_document
from cds_service.hooks.errors import HookError, Issue, operation_outcome
from cds_service.hooks.pipeline import find_service, handle_hook_call
from cds_service.hooks.schemas import fast_validator
from cds_service.knowledge.model import Knowledge
from cds_service.observability import metrics, request_log
from cds_service.security import flask_auth
from cds_service.web import cors, feedback, health
from cds_service.web.body import read_hook_body
from cds_service.web.observer import RECORDING

log = logging.getLogger(__name__)

KB_KEY = "ketamine_kb"
SETTINGS_KEY = "ketamine_settings"
SESSION_KEY = "ketamine_fhir_session"
ALLOWLIST_KEY = "ketamine_fhir_allowlist"
CLOCK_KEY = "ketamine_clock"  # () -> aware datetime; tests replace it with a fixed clock

# HTTP status -> FHIR IssueType code of the OperationOutcome
_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                413: "too-long", 415: "not-supported", 429: "throttled"}  # fmt: skip


def create_app(settings: Settings | None = None, *, kb: Knowledge | None = None, open_store: bool = True) -> Flask:
    """The WSGI application. ``settings`` default to the environment; ``kb`` to the bundled knowledge
    base with the deployment override (``KETAMINE_CDS_RULES_CONFIG``); the flags the settings set apply to
    either. ``open_store=False`` builds it as a
    configuration check only: no database connection, no background thread (the gunicorn master's check)."""
    from cds_service.knowledge.loader import default_knowledge, with_settings

    settings = settings or Settings.from_env()
    kb = with_settings(default_knowledge() if kb is None else kb, settings)  # e.g. the trd-candidate switch
    app = Flask("cds_service", static_folder=None)
    # one byte over the limit: werkzeug stops reading a chunked body (no Content-Length) at this cap
    # without an error, so the body reader must be able to see that a byte more was sent (413, not a
    # silently truncated body); bodies with a Content-Length are refused before any read
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[KB_KEY] = kb
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[ALLOWLIST_KEY] = ServerAllowlist(settings.fhir_server_allowlist)  # ConfigError if malformed
    app.extensions[SESSION_KEY] = new_session()
    app.extensions[CLOCK_KEY] = _wall_clock
    for service in SERVICES.values():
        fast_validator(service.request_schema)  # compiled at start, not on the first call

    # urllib3 logs request URLs at DEBUG; FHIR search URLs carry patient ids
    logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
    cors.install(app, settings)  # first: preflight is answered before authentication
    flask_auth.install(app, settings)
    request_log.install(app, settings)
    metrics.install(app, settings, service_ids=SERVICES)
    _register_routes(app)
    _register_error_handlers(app)
    feedback.register(app, settings, start=open_store)
    health.register(app, settings)
    return app


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _settings() -> Settings:
    settings: Settings = current_app.extensions[SETTINGS_KEY]
    return settings


def base_url(settings: Settings) -> str:
    """The public base URL cards link to (``KETAMINE_CDS_PUBLIC_BASE_URL`` or the URL of this request)."""
    return settings.public_base_url or request.host_url.rstrip("/")


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def outcome_response(status: int, issues: list[Issue] | tuple[Issue, ...]) -> Response:
    return _json(operation_outcome(issues), status)


def _register_routes(app: Flask) -> None:
    @app.get("/cds-services")
    def discovery() -> Response:
        return _json(discovery_document())

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        settings = _settings()
        find_service(service_id)  # 404 before reading the body
        body = read_hook_body(request, max_bytes=settings.max_request_bytes, max_depth=settings.max_json_depth)
        result = handle_hook_call(
            service_id,
            body,
            kb=current_app.extensions[KB_KEY],
            settings=settings,
            now=current_app.extensions[CLOCK_KEY](),
            fhir_session=current_app.extensions[SESSION_KEY],
            base_url=base_url(settings),
            allowlist=current_app.extensions[ALLOWLIST_KEY],
            observer=RECORDING,
        )
        return _json(result)

    @app.get("/docs/rules")
    def rules_page() -> Response:
        from cds_service.knowledge.docs import render_rules_page

        html = render_rules_page(current_app.extensions[KB_KEY])
        return Response(html, mimetype="text/html")


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HookError)
    def _hook_error(exc: HookError) -> Response:
        return outcome_response(exc.status, exc.issues)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            limit = _settings().max_request_bytes
            message = f"Request body is larger than {limit} bytes"
        elif status == 405:
            allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
            message = f"Method {request.method} not allowed on {request.path}" + (
                f"; use {allowed}" if allowed else ""
            )
        elif status == 404:
            message = f"No resource at {request.path}"
        else:
            message = exc.name
        response = outcome_response(status, [Issue(message, code=_ISSUE_CODES.get(status, "processing"))])
        if status == 405:
            for name, value in exc.get_headers():
                if name.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # no message, no data: exception messages may quote patient data
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
        log.error("unhandled %s at %s on %s %s", type(exc).__name__, where, request.method, request.url_rule)
        return outcome_response(500, [Issue("Internal error", code="exception", severity="fatal")])
