"""HTTP edge of ketamine-cds: the Flask app (``create_app``) and the ``serve`` command."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:  # lazy: ``ketamine-cds --help`` must not build the whole app stack
    if name == "create_app":
        from cds_service.web.app import create_app

        return create_app
    raise AttributeError(name)
