"""Measure what recording the returned cards costs the hook response (issue 7: "writes never slow the hook
response noticeably").

Not part of the test run. Usage (from the repository root):

    .venv/bin/python scripts/measure_feedback_writes.py [--requests 300] [--database-url URL] [--json]

In one process, with the real Flask app (auth off), the bundled knowledge base and a fixture request that
returns cards (``bp-160-100``, order-sign), it alternates blocks of hook calls with card recording on (the
real store, a fresh SQLite file unless ``--database-url`` names another, e.g. ``$DATABASE_URL_TEST``) and
off (``record_cards`` replaced by a no-op), and prints, per mode, the median and p95 latency of the whole
hook call. It also prints the cost of one ``record_cards`` call on the request path (it only queues) and
how fast the background writer drains the queue into the database. Results: docs/feedback.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds_service.config import Settings  # noqa: E402
from cds_service.knowledge.loader import load_knowledge  # noqa: E402
from cds_service.sandbox.evaluation import request_for  # noqa: E402
from cds_service.web import feedback as blueprint  # noqa: E402
from cds_service.web.app import create_app  # noqa: E402

FIXTURE = "bp-160-100"
URL = "/cds-services/ketamine-order-sign"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def _recording(enabled: bool) -> Iterator[None]:
    original = blueprint.record_cards
    if not enabled:
        blueprint.record_cards = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        yield
    finally:
        blueprint.record_cards = original  # type: ignore[assignment]


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(requests: int, database_url: str, block: int = 25) -> dict[str, Any]:
    logging.disable(logging.WARNING)  # one request line per call would dominate the timings
    app = create_app(Settings(auth_enabled=False, database_url=database_url), kb=load_knowledge())
    runtime = blueprint.runtime_of(app)
    assert runtime is not None and runtime.writer is not None, "the feedback store did not open"
    _label, body, _entry = request_for(FIXTURE, hook=None, order=None, now=datetime.now(UTC))
    client = app.test_client()

    def call() -> None:
        response = client.post(URL, json=body)
        assert response.status_code == 200 and response.json and response.json["cards"], response.status_code

    cards_per_call = len(client.post(URL, json=body).json["cards"])  # type: ignore[index]
    for _ in range(20):  # warm-up: imports, caches, connection pool, the writer thread
        call()
    runtime.writer.flush(30)
    timings: dict[str, list[float]] = {"recording on": [], "recording off": []}
    done = 0
    while done < requests:  # alternate blocks so that drift (CPU frequency, other load) hits both modes
        for mode in timings:
            with _recording(mode == "recording on"):
                timings[mode].extend(_timed(call) for _ in range(block))
        done += block
    runtime.writer.flush(60)

    # the request-path cost of one record_cards call (it only builds records and queues them)
    triples = [(f"m-{i}", "hypertension-uncontrolled", "critical") for i in range(cards_per_call)]
    with app.app_context():
        record_us = [
            _timed(lambda: blueprint.record_cards("ketamine-order-sign", "order-sign", "hi", triples, kb_version="v"))
            * 1000
            for _ in range(2000)
        ]
    # background throughput: queue many calls at once and time until they are all in the database
    calls = 2000
    with app.app_context():
        start = time.perf_counter()
        for n in range(calls):
            blueprint.record_cards(
                "ketamine-order-sign", "order-sign", f"hi-{n}",
                [(f"d-{n}-{i}", "hypertension-uncontrolled", "critical") for i in range(cards_per_call)],
                kb_version="x",
            )
        runtime.writer.flush(300)
        drain_s = time.perf_counter() - start
    stats = runtime.card_stats()
    runtime.close()
    return {
        "database": database_url.split("://", 1)[0],
        "cards_per_call": cards_per_call,
        "hook_call_ms": {
            mode: {"n": len(v), "median": round(statistics.median(v), 3), "p95": round(_percentile(v, 0.95), 3)}
            for mode, v in timings.items()
        },
        "record_cards_call_us": {"median": round(statistics.median(record_us), 1),
                                 "p95": round(_percentile(record_us, 0.95), 1)},
        "writer_cards_per_second": round(calls * cards_per_call / drain_s),
        "writer": {"written": stats.written, "dropped": stats.dropped, "failed": stats.failed},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help="hook calls per mode (default 300)")
    parser.add_argument("--database-url", help="store to measure (default: a new SQLite file in a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.requests, args.database_url or f"sqlite:///{tmp}/feedback.sqlite3")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    on, off = result["hook_call_ms"]["recording on"], result["hook_call_ms"]["recording off"]
    print(f"store: {result['database']}; fixture {FIXTURE}: {result['cards_per_call']} cards per call")
    print(f"{'hook call (ms)':<22}{'median':>10}{'p95':>10}{'n':>7}")
    for mode, row in result["hook_call_ms"].items():
        print(f"{mode:<22}{row['median']:>10.3f}{row['p95']:>10.3f}{row['n']:>7}")
    print(f"{'difference':<22}{on['median'] - off['median']:>+10.3f}{on['p95'] - off['p95']:>+10.3f}")
    rc = result["record_cards_call_us"]
    print(f"record_cards on the request path: median {rc['median']} us, p95 {rc['p95']} us (queues only)")
    print(f"background writer: {result['writer_cards_per_second']} cards/s into the database; {result['writer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
