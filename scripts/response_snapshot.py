"""The HTTP answer to every fixture request, to prove that a refactoring leaves behaviour unchanged.

    python scripts/response_snapshot.py snapshot before.jsonl      # on the code before the change
    python scripts/response_snapshot.py snapshot after.jsonl       # on the code after it
    python scripts/response_snapshot.py compare before.jsonl after.jsonl

Every fixture of the library is sent to the web app (Flask's test client, authentication off, the clock
pinned) for both hooks, with its full prefetch and with none (the FHIR fallback answered from the fixture
by the in-memory FHIR server). One line per call: the call, its status and the response bytes, in which
only the card and suggestion uuids (random by design) are replaced by a placeholder. ``compare`` exits 1
and names the calls whose answers differ.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import responses

from cds_service.config import Settings
from cds_service.fhir.memory import MemoryServer, resources_from_bundle
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest
from cds_service.sandbox.requests import HOOKS, build_request, load_template, service_id
from cds_service.web.app import CLOCK_KEY, create_app

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the tests' clock
FHIR_BASE = "https://fhir.snapshot.test/r4"
_UUID = re.compile(rb'"uuid":\s*"[0-9a-f-]{36}"')


def snapshot(out: Path) -> int:
    manifest = load_manifest()
    calls = 0
    with tempfile.TemporaryDirectory() as tmp, out.open("w", encoding="utf-8") as sink:
        settings = Settings(
            auth_enabled=False, fhir_server_allowlist=(FHIR_BASE,), database_url=f"sqlite:///{tmp}/feedback.sqlite3"
        )
        app = create_app(settings)
        app.extensions[CLOCK_KEY] = lambda: NOW
        client = app.test_client()
        for entry in manifest.entries:
            bundle = manifest.bundle(entry)
            server = MemoryServer(resources_from_bundle(roller.roll(bundle, NOW, anchor=manifest.anchor)), FHIR_BASE)
            template = load_template(entry.order_template)
            for hook in HOOKS:
                for prefetch in (True, False):
                    body = build_request(
                        bundle, template, hook, anchor=manifest.anchor, params=entry.order_params,
                        prefetch=prefetch, fhir_server=FHIR_BASE, name=entry.name,
                    )  # fmt: skip
                    with _fhir(server):
                        response = client.post(f"/cds-services/{service_id(hook)}", json=roller.roll(body, NOW))
                    answer = _UUID.sub(b'"uuid": "<uuid>"', response.get_data())
                    line = {"fixture": entry.name, "hook": hook, "prefetch": prefetch,
                            "status": response.status_code, "body": answer.decode("utf-8")}  # fmt: skip
                    sink.write(json.dumps(line, ensure_ascii=False) + "\n")
                    calls += 1
    print(f"{calls} calls written to {out}")
    return 0


@contextmanager
def _fhir(server: MemoryServer) -> Iterator[None]:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        result = server.query(request.url)
        headers = {"Content-Type": "application/fhir+json"}
        if result.body is None:
            return 404, headers, json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error",
                                                                                            "code": "not-found"}]})
        return 200, headers, json.dumps(result.body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(re.escape(FHIR_BASE) + r"(/.*)?(\?.*)?$"), callback=answer)
        yield


def compare(before: Path, after: Path) -> int:
    def read(path: Path) -> dict[tuple[str, str, bool], dict[str, Any]]:
        lines = (json.loads(line) for line in path.read_text("utf-8").splitlines() if line)
        return {(d["fixture"], d["hook"], d["prefetch"]): d for d in lines}

    old, new = read(before), read(after)
    differ = [key for key in old.keys() | new.keys() if old.get(key) != new.get(key)]
    for fixture, hook, prefetch in sorted(differ):
        print(f"DIFFERS: {fixture} {hook} {'prefetch' if prefetch else 'no prefetch'}")
    print(f"{len(old)} calls before, {len(new)} after, {len(differ)} differ")
    return 1 if differ or not old else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="write the answer to every fixture request")
    snap.add_argument("out", type=Path)
    cmp = sub.add_parser("compare", help="compare two snapshots")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    return snapshot(args.out) if args.command == "snapshot" else compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
