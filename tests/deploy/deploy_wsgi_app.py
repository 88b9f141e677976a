"""A WSGI app for the multi-worker metrics test: the real metrics and health parts, plus a route that
takes a little time, like a real call."""

from __future__ import annotations

import time

from flask import Flask

from cds_service.config import Settings
from cds_service.observability import metrics
from cds_service.web import health


def create() -> Flask:
    app = Flask("deploy-wsgi-test")
    settings = Settings(auth_enabled=False)
    metrics.install(app, settings)
    health.register(app, settings)

    @app.get("/slow")
    def slow() -> str:
        time.sleep(0.05)
        return "done"

    return app
