"""The floor: the cheapest possible CDS service under the same WSGI server and request parsing.

It reads the body with the service's own edge parser (``cds_service.web.body.read_json_body``: content
type, size cap, nesting-depth check, ``json.loads``) and answers ``{"cards": []}``. The benchmark divides
the service's latency by this one: the ratio is what everything after parsing costs.
Run under gunicorn with the production options by ``python -m benchmarks.serve floor``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from cds_service.config import Settings
from cds_service.hooks.errors import HookError, operation_outcome
from cds_service.web.body import read_json_body


def create_floor_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("ketamine-cds-floor")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes

    @app.post("/cds-services/<service_id>")
    def call(service_id: str) -> tuple[Response, int] | Response:
        del service_id
        try:
            body = read_json_body(request, max_bytes=settings.max_request_bytes, max_depth=settings.max_json_depth)
        except HookError as exc:
            return jsonify(operation_outcome(exc.issues)), exc.status
        if not isinstance(body, dict):
            return jsonify({"resourceType": "OperationOutcome"}), 400
        return jsonify({"cards": []})

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app
