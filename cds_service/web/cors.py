"""CORS for browser-based CDS clients (the CDS Hooks sandbox).

Preflight ``OPTIONS`` on the CDS endpoints is answered here, before authentication. Allowed origins come
from ``KETAMINE_CDS_CORS_ORIGINS``; ``*`` is honoured only when configured explicitly, and then no
credentials are allowed. Responses to allowed origins carry ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from cds_service.config import Settings
from cds_service.hooks.pipeline import find_service

ALLOW_HEADERS = "Authorization, Content-Type"
MAX_AGE = "600"


def _is_cors_path(path: str) -> bool:
    return path == "/cds-services" or path.startswith("/cds-services/")


def install(app: Flask, settings: Settings) -> None:
    origins = frozenset(o.rstrip("/") for o in settings.cors_allowed_origins)
    wildcard = "*" in origins

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if not origin:
            return None
        if origin.rstrip("/") in origins:
            return origin
        return "*" if wildcard else None

    @app.before_request
    def _preflight() -> Any:
        if request.method != "OPTIONS" or not _is_cors_path(request.path) or request.url_rule is None:
            return None  # not a CDS endpoint (an unknown path answers 404 as usual)
        service_id = (request.view_args or {}).get("service_id")
        if service_id is not None:
            find_service(service_id)  # HookError 404 for an unknown service, preflight or not
        methods = ", ".join(sorted((request.url_rule.methods or set()) - {"HEAD"}))
        response = Response(status=204)
        response.headers["Allow"] = methods
        origin = allowed_origin()
        if origin and request.headers.get("Access-Control-Request-Method"):
            response.headers["Access-Control-Allow-Methods"] = methods
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @app.after_request
    def _cors_headers(response: Response) -> Response:
        if not _is_cors_path(request.path):
            return response
        origin = allowed_origin()
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
        if origins and not wildcard:
            response.vary.add("Origin")
        return response
