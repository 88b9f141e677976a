"""Reading a JSON request body at the edge: content type, size cap, nesting depth, parse."""

from __future__ import annotations

import json
from typing import Any

from flask import Request
from werkzeug.exceptions import ClientDisconnected

from cds_service.hooks.body import HookBody, decode_hook_body
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.limits import nesting_exceeds, too_deep

_JSON_TYPES = ("application/json",)


def is_json_content_type(mimetype: str) -> bool:
    """application/json or any ``+json`` type (application/fhir+json)."""
    return mimetype in _JSON_TYPES or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def read_json_body(request: Request, *, max_bytes: int, max_depth: int) -> Any:
    """The parsed body (``json.loads`` of all of it; the nesting of a top-level ``prefetch`` not checked);
    ``HookError`` 415 (not JSON), 413 (too large) or 400 (malformed or too deep). For feedback and the
    benchmark floor; a hook call is read by :func:`read_hook_body`."""
    raw = read_json_bytes(request, max_bytes=max_bytes)
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise HookError(400, Issue("The request body is not UTF-8 text", code="structure")) from exc
    except ValueError as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise HookError(400, Issue(f"The request body is not valid JSON{where}", code="structure")) from exc
    except RecursionError as exc:  # the C parser's own guard, far deeper than max_depth
        raise HookError(400, too_deep(max_depth)) from exc
    if nesting_exceeds(body, max_depth, skip_keys=("prefetch",)):  # the benchmark floor: as it always was
        raise HookError(400, too_deep(max_depth))
    return body


def read_hook_body(request: Request, *, max_bytes: int, max_depth: int) -> HookBody:
    """A hook call's body: the envelope decoded, the prefetch kept raw until read
    (``hooks.body.decode_hook_body``); the errors of :func:`read_json_body`."""
    return decode_hook_body(read_json_bytes(request, max_bytes=max_bytes, in_one_read=True), max_depth)


def read_json_bytes(request: Request, *, max_bytes: int, in_one_read: bool = False) -> bytes:
    """The raw body of a JSON request; ``HookError`` 415 (not JSON), 413 (too large), 400 (empty).

    ``in_one_read``: a body with a Content-Length is read from the server's input stream in one call
    (werkzeug's ``get_data`` reads it 64 KiB at a time and copies it three more times: 1-2 ms for 2.5 MB).
    """
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
    # without a Content-Length (chunked), werkzeug's stream stops at MAX_CONTENT_LENGTH
    one_read = in_one_read and length is not None
    raw = _read_exactly(request, length or 0) if one_read else request.get_data(cache=False)
    if len(raw) > max_bytes:
        raise HookError(413, Issue(f"Request body is larger than {max_bytes} bytes", code="too-long"))
    if not raw.strip():
        raise HookError(400, Issue("The request body is empty", code="structure"))
    return raw


def _read_exactly(request: Request, length: int) -> bytes:
    """The ``length`` bytes of the body; ``ClientDisconnected`` (400) when fewer arrive, as werkzeug's own
    stream answers."""
    raw: bytes = request.environ["wsgi.input"].read(length) if length else b""
    if len(raw) < length:
        raise ClientDisconnected()
    return raw
