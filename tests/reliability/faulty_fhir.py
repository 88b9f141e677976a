"""A real FHIR server on 127.0.0.1 that misbehaves on purpose, for fault-injection tests.

Paths that contain ``fault_path`` (every path when it is None) answer according to the server's current
``mode``; the others answer normally (the patient, empty searchsets). ``requests_seen`` and
``paths_seen`` count requests so a test can prove that a loop was cut off. Nothing here is mocked: the
service's HTTP client talks to a real socket.
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

from tests.loopback import serving

EMPTY_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}


class FaultyFhirServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the service opens up to 8 connections at once: never drop one in the backlog

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.fault_path: str | None = None
        self.delay_seconds = 0.0
        self.requests_seen = 0
        self.paths_seen: list[str] = []
        self.patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"}
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"

    def count(self, path: str) -> None:
        with self._lock:
            self.requests_seen += 1
            self.paths_seen.append(path)

    def hits(self, fragment: str) -> int:
        """How many requests had ``fragment`` in their path."""
        with self._lock:
            return sum(1 for p in self.paths_seen if fragment in p)


class _Handler(BaseHTTPRequestHandler):
    server: FaultyFhirServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.count(self.path)
        fault = self.server.fault_path
        mode = self.server.mode if fault is None or fault in self.path else "ok"
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
        elif mode == "looping-next":  # every page names itself as the next one: a cycle
            loop = dict(EMPTY_BUNDLE)
            loop["link"] = [{"relation": "next", "url": f"{self.server.base_url}{self.path.removeprefix('/fhir')}"}]
            self._json(200, loop)
        elif mode == "endless-next":  # every page names a new next page: no cycle, never ends
            page = dict(EMPTY_BUNDLE)
            query = self.path.removeprefix("/fhir").split("&_page=")[0]
            nxt = f"{self.server.base_url}{query}&_page={self.server.requests_seen}"
            page["link"] = [{"relation": "next", "url": nxt}]
            self._json(200, page)
        elif mode == "huge":
            self._huge(50 * 1024 * 1024, declared=True)
        elif mode == "huge-chunked":  # no Content-Length: only a cap on the bytes read can stop it
            self._huge(50 * 1024 * 1024, declared=False)
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

    def _huge(self, size: int, *, declared: bool) -> None:
        """A valid-looking JSON body of ``size`` bytes, streamed in chunks, with or without Content-Length
        (chunked transfer encoding)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        if declared:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = b'{"resourceType":"Bundle","type":"searchset","entry":[],"padding":"'
        tail = b'"}'
        chunk = b"x" * 65536
        remaining = size - len(head) - len(tail)

        def send(data: bytes) -> None:
            self.wfile.write(data if declared else b"%x\r\n%s\r\n" % (len(data), data))

        try:
            send(head)
            while remaining > 0:
                piece = chunk[: min(len(chunk), remaining)]
                send(piece)
                remaining -= len(piece)
            send(tail)
            if not declared:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def faulty_fhir_server() -> Iterator[FaultyFhirServer]:
    server = FaultyFhirServer()
    with serving(server):
        yield server


def refused_base_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"
