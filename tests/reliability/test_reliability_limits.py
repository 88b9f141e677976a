"""Request size and JSON depth limits: 413 and 400 with an OperationOutcome, before any parsing cost."""

from __future__ import annotations

import io
import json
from typing import Any

from werkzeug.test import EnvironBuilder

from cds_service.config import Settings
from cds_service.web.app import create_app
from tests.reliability.requests_for_tests import KETAMINE_DRAFT, order_sign


def _client(kb: object, **overrides: object):  # type: ignore[no-untyped-def]
    settings = Settings(auth_enabled=False, database_url="sqlite://", **overrides)  # type: ignore[arg-type]
    return create_app(settings, kb=kb).test_client()


def test_body_over_the_limit_is_413(kb) -> None:
    client = _client(kb, max_request_bytes=50_000)
    body = order_sign(KETAMINE_DRAFT)
    body["extension"] = {"org.example.padding": "x" * 60_000}
    response = client.post("/cds-services/ketamine-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_body_just_under_the_limit_is_accepted(kb) -> None:
    client = _client(kb, max_request_bytes=50_000)
    body = order_sign(KETAMINE_DRAFT, prefetch={"patient": None})
    body["extension"] = {"org.example.padding": "x" * 40_000}
    response = client.post("/cds-services/ketamine-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code != 413


def _nested(depth: int) -> dict[str, object]:
    node: dict[str, object] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


def test_json_deeper_than_the_limit_is_400(kb) -> None:
    client = _client(kb, max_json_depth=64)
    body = order_sign(KETAMINE_DRAFT)
    body["extension"] = {"org.example.deep": _nested(200)}
    response = client.post("/cds-services/ketamine-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "depth" in json.dumps(outcome).lower()


def test_pathologically_deep_json_does_not_crash_the_parser(kb) -> None:
    client = _client(kb)
    raw = '{"hook": "order-sign", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post("/cds-services/ketamine-order-sign", data=raw, content_type="application/json")
    assert response.status_code in (400, 413)
    assert response.get_json()["resourceType"] == "OperationOutcome"


FIFTY_MB = 50 * 1024 * 1024


class _CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes produced on demand, counting how much the service reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b" " * n
        self.read_bytes += n
        return n


def _environ(stream: _CountingStream, *, declared: bool) -> dict[str, Any]:
    """A WSGI environ whose body is ``stream``: with Content-Length, or chunked as gunicorn passes it on."""
    environ = EnvironBuilder("/cds-services/ketamine-order-sign", method="POST", content_type="application/json")
    env: dict[str, Any] = environ.get_environ()
    env["wsgi.input"] = stream
    if declared:
        env["CONTENT_LENGTH"] = str(stream.size)
    else:
        env.pop("CONTENT_LENGTH", None)
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
        env["wsgi.input_terminated"] = True
    return env


def _call(app: Any, stream: _CountingStream, declared: bool) -> tuple[int, dict[str, Any]]:
    """Call the WSGI app directly (the test client would measure the stream by seeking through it)."""
    started: list[str] = []
    chunks = app(_environ(stream, declared=declared), lambda status, headers, exc_info=None: started.append(status))
    body = b"".join(chunks)
    return int(started[0].split()[0]), json.loads(body)


def test_fifty_megabyte_body_is_413_before_a_byte_is_read(kb) -> None:
    stream = _CountingStream(FIFTY_MB)
    status, outcome = _call(create_app(Settings(auth_enabled=False, database_url="sqlite://"), kb=kb), stream, True)
    assert status == 413
    assert outcome["resourceType"] == "OperationOutcome"
    assert "larger than 10485760 bytes" in outcome["issue"][0]["diagnostics"]  # the default limit, 10 MB
    assert stream.read_bytes == 0


def test_fifty_megabyte_chunked_body_is_413_after_at_most_the_limit(kb) -> None:
    """No Content-Length (chunked transfer): reading stops at the limit, the rest is never read."""
    limit = 1024 * 1024
    stream = _CountingStream(FIFTY_MB)
    app = create_app(Settings(auth_enabled=False, database_url="sqlite://", max_request_bytes=limit), kb=kb)
    status, outcome = _call(app, stream, False)
    assert status == 413
    assert outcome["resourceType"] == "OperationOutcome"
    assert 0 < stream.read_bytes <= limit + 64 * 1024
