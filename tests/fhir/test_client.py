"""The FHIR client against a real loopback server: a server that trickles bytes is cut off by the overall
deadline (a per-read timeout alone would wait for ever), and the token goes only to that server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests

from cds_service.fhir.client import FetchError, FhirClient
from tests.builders.requests import settings
from tests.loopback import serving


class _Handler(BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        body = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}).encode() * 10
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def dripping_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"


def test_trickling_server_is_cut_off_by_the_deadline(dripping_server: str) -> None:
    s = settings(fhir_connect_timeout=0.3, fhir_read_timeout=0.5, fhir_server_allowlist=(dripping_server,))
    client = FhirClient(dripping_server, token="tok", settings=s, session=requests.Session())
    with pytest.raises(FetchError) as info:
        client.search("Condition?patient=p1", follow_pages=True)
    assert info.value.kind == "timeout"
    assert _Handler.seen_auth == ["Bearer tok"]
    assert "tok" not in repr(client)
