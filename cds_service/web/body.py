"""Reading a JSON request body at the edge: content type, size cap, nesting depth, parse."""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.limits import nesting_exceeds, too_deep

_JSON_TYPES = ("application/json",)


def is_json_content_type(mimetype: str) -> bool:
    """application/json or any ``+json`` type (application/fhir+json)."""
    return mimetype in _JSON_TYPES or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def read_json_body(request: Request, *, max_bytes: int, max_depth: int) -> Any:
    """The parsed body; ``HookError`` 415 (not JSON), 413 (too large) or 400 (malformed or too deep)."""
    return read_json_request(request, max_bytes=max_bytes, max_depth=max_depth)[0]


def read_json_request(request: Request, *, max_bytes: int, max_depth: int) -> tuple[Any, bytes]:
    """The parsed body and its raw bytes (for the prefetch's nesting check, done only when the prefetch is
    read); the errors of :func:`read_json_body`. The depth of a ``prefetch`` member is not checked here."""
    if not is_json_content_type(request.mimetype):
        raise HookError(
            415,
            Issue(
                f"Content-Type must be application/json (got {request.mimetype or 'none'!r})",
                code="not-supported",
            ),
        )
    length = request.content_length
    if length is not None and length > max_bytes:
        raise HookError(413, Issue(f"Request body is larger than {max_bytes} bytes", code="too-long"))
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH also guards chunked bodies
    if len(raw) > max_bytes:
        raise HookError(413, Issue(f"Request body is larger than {max_bytes} bytes", code="too-long"))
    if not raw.strip():
        raise HookError(400, Issue("The request body is empty", code="structure"))
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise HookError(400, Issue("The request body is not UTF-8 text", code="structure")) from exc
    except ValueError as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise HookError(400, Issue(f"The request body is not valid JSON{where}", code="structure")) from exc
    except RecursionError as exc:  # the C parser's own guard, far deeper than max_depth
        raise HookError(400, too_deep(max_depth)) from exc
    if nesting_exceeds(body, max_depth, skip_keys=("prefetch",)):  # prefetch: checked when it is read
        raise HookError(400, too_deep(max_depth))
    return body, raw
