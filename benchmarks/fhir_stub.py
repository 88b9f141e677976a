"""A local FHIR R4 server stub for workload 4: answers every read/search after a fixed delay.

Serves the synthetic typical patient (``workloads.stub_data``) on 127.0.0.1 only. Searches are matched
by resource type and, for Observation, by the ``code`` / ``category`` parameters, so each prefetch key
of the service gets the resources it asked for. Run: ``python -m benchmarks.fhir_stub --port 0``
(prints ``READY <port>`` once listening).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from benchmarks.workloads import Resource, searchset, stub_data


def _codes(resource: Resource, field: str) -> set[str]:
    value = resource.get(field)
    concepts = value if isinstance(value, list) else [value] if value else []
    return {c.get("code", "") for concept in concepts for c in concept.get("coding", [])}


def _tokens(values: list[str]) -> set[str]:
    """``system|code`` or ``code`` tokens, comma-separated (OR), to bare codes."""
    return {tok.split("|")[-1] for raw in values for tok in raw.split(",") if tok}


class FhirIndex:
    def __init__(self, data: dict[str, list[Resource]]) -> None:
        self.by_type: dict[str, list[Resource]] = {}
        for resources in data.values():
            for r in resources:
                self.by_type.setdefault(r["resourceType"], []).append(r)

    def read(self, rtype: str, rid: str) -> Resource | None:
        return next((r for r in self.by_type.get(rtype, []) if r.get("id") == rid), None)

    def search(self, rtype: str, params: dict[str, list[str]]) -> dict[str, Any]:
        found = list(self.by_type.get(rtype, []))
        if rtype == "Observation":
            codes = _tokens(params.get("code", []))
            cats = _tokens(params.get("category", []))
            if codes:
                found = [r for r in found if _codes(r, "code") & codes]
            if cats:
                found = [r for r in found if _codes(r, "category") & cats]
        if params.get("_sort") == ["-date"]:
            found.sort(key=lambda r: str(r.get("effectiveDateTime") or r.get("authoredOn") or ""), reverse=True)
        if params.get("_count"):
            found = found[: int(params["_count"][0])]
        if any(":medication" in v for v in params.get("_include", [])):
            found = found + self.by_type.get("Medication", [])
        return searchset(found)


def make_handler(index: FhirIndex, delay: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle's algorithm the body would wait for the client's
        # delayed ACK of the headers (~40 ms on Linux), and the stub would answer in ~140 ms, not ``delay``.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            time.sleep(delay)
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts and parts[0] == "fhir":
                parts = parts[1:]
            params = parse_qs(url.query)
            body: Any
            status = 200
            if len(parts) == 2:
                body = index.read(parts[0], parts[1])
                if body is None:
                    status, body = 404, {"resourceType": "OperationOutcome", "issue": [
                        {"severity": "error", "code": "not-found", "diagnostics": "not found"}]}
            elif len(parts) == 1:
                body = index.search(parts[0], params)
            else:
                status, body = 400, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "invalid", "diagnostics": "unsupported path"}]}
            raw = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each answer")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(FhirIndex(stub_data()), args.delay))
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
