"""Checks of a hook request: its JSON Schema (in openapi.yaml), then what the service's subjects ask of the
hook context (order-select: the selections name draft orders)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.hooks.catalog import ServiceDefinition
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.schemas import is_valid_json, schema_issues


def validate_request(service: ServiceDefinition[Any], body: Any, *, parsed_json: bool = False) -> None:
    """Raise ``HookError(400)`` naming every problem of ``body`` for ``service``; return when it is valid.

    ``parsed_json``: ``body`` is what a JSON decoder made of the request, so the compiled schema check may
    pass it (``schemas.is_valid_json``); the issues of an invalid body always come from ``schema_issues``.
    """
    if not isinstance(body, Mapping):
        raise HookError(400, Issue("The request body must be a JSON object", code="structure"))
    hook = body.get("hook")
    if isinstance(hook, str) and hook != service.hook:
        raise HookError(
            400,
            Issue(
                f"hook {hook!r} does not match service {service.id!r}, which answers {service.hook!r}",
                code="value",
                expression="hook",
            ),
        )
    if not (parsed_json and is_valid_json(service.request_schema, body)):
        issues = schema_issues(service.request_schema, body)
        if issues:
            raise HookError(400, issues)
    issues = service.subjects.context_issues(body["context"])
    if issues:
        raise HookError(400, issues)
