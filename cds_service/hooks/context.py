"""Checks of a hook request beyond its JSON Schema (which lives in openapi.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.hooks.catalog import ServiceDefinition
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.schemas import is_valid_json, schema_issues


def validate_request(service: ServiceDefinition, body: Any, *, parsed_json: bool = False) -> None:
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
    issues = context_issues(service, body["context"])
    if issues:
        raise HookError(400, issues)


def context_issues(service: ServiceDefinition, context: Mapping[str, Any]) -> list[Issue]:
    """order-select: every entry of ``selections`` names an entry of ``draftOrders`` (``Type/id``)."""
    if service.hook != "order-select":
        return []
    present = draft_order_references(context.get("draftOrders"))
    issues: list[Issue] = []
    for i, selection in enumerate(context.get("selections") or ()):
        if selection not in present:
            issues.append(
                Issue(
                    f"selection {selection!r} does not reference an entry of context.draftOrders",
                    code="value",
                    expression=f"context.selections[{i}]",
                )
            )
    return issues


def draft_order_references(draft_orders: Any) -> set[str]:
    """``Type/id`` of every entry resource of the draftOrders Bundle that has an id."""
    refs: set[str] = set()
    entries = draft_orders.get("entry") if isinstance(draft_orders, Mapping) else None
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping):
            rtype, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(rtype, str) and isinstance(rid, str):
                refs.add(f"{rtype}/{rid}")
    return refs
