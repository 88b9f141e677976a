"""A real FHIR server on 127.0.0.1 that misbehaves on purpose, for fault-injection tests.

Every path answers according to the server's current ``mode``; ``requests_seen`` counts requests so a
test can prove that a loop was cut off. Nothing here is mocked: the service's HTTP client talks to a
real socket.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMPTY_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}


class FaultyFhirServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.delay_seconds = 0.0
        self.requests_seen = 0
        self.patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"}
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"

    def count(self) -> None:
        with self._lock:
            self.requests_seen += 1


class _Handler(BaseHTTPRequestHandler):
    server: FaultyFhirServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.count()
        mode = self.server.mode
        if self.server.delay_seconds:
            time.sleep(self.server.delay_seconds)
        if mode == "ok":
            body = self.server.patient if self.path.split("?")[0].endswith("/Patient/p1") else EMPTY_BUNDLE
            self._json(200, body)
        elif mode == "read-timeout":
            time.sleep(30)
            self._json(200, EMPTY_BUNDLE)
        elif mode == "slow-drip":
            self._drip()
        elif mode.startswith("status-"):
            status = int(mode.removeprefix("status-"))
            self._json(status, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]})
        elif mode == "not-json":
            self._raw(200, b"<html>login page</html>", "text/html")
        elif mode == "looping-next":
            loop = dict(EMPTY_BUNDLE)
            loop["link"] = [{"relation": "next", "url": f"{self.server.base_url}{self.path.removeprefix('/fhir')}"}]
            self._json(200, loop)
        elif mode == "huge":
            self._huge(50 * 1024 * 1024)
        else:
            self._json(500, {"resourceType": "OperationOutcome"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._raw(status, json.dumps(body).encode(), "application/fhir+json")

    def _raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _drip(self) -> None:
        """Headers at once, then one byte a quarter-second: defeats a per-read timeout, not a deadline."""
        payload = json.dumps(EMPTY_BUNDLE).encode() * 20
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            for i in range(len(payload)):
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _huge(self, size: int) -> None:
        """A valid-looking JSON body of ``size`` bytes, streamed in chunks."""
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        head = b'{"resourceType":"Bundle","type":"searchset","entry":[],"padding":"'
        tail = b'"}'
        chunk = b"x" * 65536
        remaining = size - len(head) - len(tail)
        try:
            self.wfile.write(head)
            while remaining > 0:
                piece = chunk[: min(len(chunk), remaining)]
                self.wfile.write(piece)
                remaining -= len(piece)
            self.wfile.write(tail)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def faulty_fhir_server() -> Iterator[FaultyFhirServer]:
    server = FaultyFhirServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def refused_base_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"
