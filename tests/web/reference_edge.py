"""The hook-call edge as it was before the prefetch was decoded lazily (main at 4db2dc3), kept as the
reference of the differential test (``test_protocol_edge_differential.py``): never used by the service.

It read the whole body with ``json.loads`` (UTF-8, or UTF-16/32 as RFC 4627 detects them, a UTF-8 BOM,
``NaN``/``Infinity``, lone surrogates and numbers beyond a double all accepted), checked the nesting of
every member but the prefetch at once, and the prefetch's nesting on the raw bytes when a ketamine order
was found; then it ran the pipeline on the parsed body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.context import validate_request
from cds_service.hooks.errors import HookError, Issue, operation_outcome
from cds_service.hooks.limits import nesting_exceeds, raw_nesting_exceeds, too_deep
from cds_service.order.recognition import find_ketamine_requests

Pipeline = Callable[[str, Mapping[str, Any]], dict[str, Any]]


def reference_read(raw: bytes, max_depth: int) -> Any:
    """``web.body.read_json_request`` of 4db2dc3, after its content-type and size checks (unchanged)."""
    if not raw.strip():
        raise HookError(400, Issue("The request body is empty", code="structure"))
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise HookError(400, Issue("The request body is not UTF-8 text", code="structure")) from exc
    except ValueError as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise HookError(400, Issue(f"The request body is not valid JSON{where}", code="structure")) from exc
    except RecursionError as exc:
        raise HookError(400, too_deep(max_depth)) from exc
    if nesting_exceeds(body, max_depth, skip_keys=("prefetch",)):
        raise HookError(400, too_deep(max_depth))
    return body


def reference_prefetch_too_deep(body: Mapping[str, Any], raw: bytes, max_depth: int) -> bool:
    """``hooks.pipeline._prefetch_too_deep`` of 4db2dc3."""
    if b"\x00" in raw[:4]:
        raw = json.dumps({"prefetch": body.get("prefetch")}, default=str).encode()
    return raw_nesting_exceeds(raw, max_depth)


def reference_call(service_id: str, raw: bytes, *, kb: Any, max_depth: int, pipeline: Pipeline) -> tuple[int, Any]:
    """Status and JSON answer of a hook call through the old edge. ``pipeline(service_id, parsed_body)``
    runs everything after the edge (the pipeline of a parsed body, as the sandbox calls it)."""
    try:
        body = reference_read(raw, max_depth)
        service = SERVICES[service_id]
        validate_request(service, body, parsed_json=True)
        context = body["context"]
        if "draftOrders" not in context:  # a service of the patient (patient-view): the patient is there to judge
            if not service.subjects.find(context, kb):
                return 200, {"cards": []}
        elif not find_ketamine_requests(context["draftOrders"], context.get("selections") if service.hook ==
                                        "order-select" else None, kb):  # fmt: skip
            return 200, {"cards": []}
        if reference_prefetch_too_deep(body, raw, max_depth):
            raise HookError(400, too_deep(max_depth, "prefetch"))
        return 200, pipeline(service_id, body)
    except HookError as exc:
        return exc.status, operation_outcome(exc.issues)
