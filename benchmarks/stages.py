"""Time each stage of one hook call in-process: ``python -m benchmarks.stages 2-ketamine-typical``.

Complements ``benchmarks.run`` (end-to-end latency over HTTP) and ``benchmarks.profile`` (call tree): it
calls the pipeline's stages one by one on a workload's request and prints the median of each, plus the
fhir.resources validation cost per resource type and the whole in-process call for the floor, the
service, and the service with validation replaced by a no-op (``--without-validation`` shows what every
other stage costs together). Workload 4 is not supported (it needs the FHIR stub).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from benchmarks.floor import create_floor_app
from benchmarks.workloads import Workload, build_workloads
from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.capped_search import decode_capped_search
from cds_service.fhir.prefetch import resolve_prefetch
from cds_service.hooks.body import decode_hook_body
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.context import validate_request
from cds_service.hooks.gather import with_prefetch
from cds_service.hooks.limits import raw_nesting_exceeds
from cds_service.knowledge.loader import load_knowledge
from cds_service.order.model import OrderStage
from cds_service.order.parser import parse_order
from cds_service.order.recognition import find_ketamine_requests
from cds_service.record import kinds, validation
from cds_service.record.builder import build_record
from cds_service.rules import engine
from cds_service.web.app import create_app

SERVICE_ID = "ketamine-order-sign"


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
CLOCK = CLOCKS["wall"]  # --clock cpu: this thread's CPU time, steadier on a machine others are using


def median_ms(action: Callable[[], object], calls: int) -> float:
    """Median time of ``calls`` calls of ``action`` (after a short warm-up) by ``CLOCK``, in milliseconds."""
    for _ in range(min(5, calls)):
        action()
    times = []
    for _ in range(calls):
        start = CLOCK()
        action()
        times.append(CLOCK() - start)
    return statistics.median(times) * 1000


def stage_times(workload: Workload, calls: int) -> dict[str, float]:
    """Median milliseconds of each pipeline stage for the workload's request."""
    kb = load_knowledge()
    settings = Settings(auth_enabled=False)
    depth = settings.max_json_depth
    service = SERVICES[SERVICE_ID]
    raw = json.dumps(workload.body).encode()
    request = decode_hook_body(raw, depth)
    envelope = request.envelope
    draft_orders = envelope["context"]["draftOrders"]
    now = datetime.now(UTC)
    allowlist = ServerAllowlist(settings.fhir_server_allowlist)
    orders = find_ketamine_requests(draft_orders, None, kb)
    body = with_prefetch(request, service.prefetch, depth)
    resolution = resolve_prefetch(
        service.prefetch, body, settings=settings, allowlist=allowlist, session=None
    )
    patient_id = envelope["context"]["patientId"]

    def build() -> object:  # as the pipeline builds it
        return build_record(resolution.resources, kb, available=resolution.available, gaps=resolution.gaps,
                            patient_id=patient_id, now=now, zone=settings.local_zone)  # fmt: skip

    record = build()
    order = parse_order(orders[0], draft_orders, kb, OrderStage.SIGN) if orders else None
    prefetch = workload.body.get("prefetch", {})
    members = [json.dumps(value).encode() for value in prefetch.values()]
    capped = [json.dumps(prefetch[k.key]).encode() for k in service.prefetch
              if k.kind in kinds.CAPPED and k.key in prefetch]  # fmt: skip
    stages: dict[str, Callable[[], object]] = {
        "json.loads of the body (the floor pays it too)": lambda: json.loads(raw),
        "envelope decode (msgspec, prefetch kept raw)": lambda: decode_hook_body(raw, depth),
        "envelope schema check": lambda: validate_request(service, request.schema_view(), parsed_json=True),
        "ketamine scan": lambda: find_ketamine_requests(draft_orders, None, kb),
        "- prefetch nesting check (raw members)": lambda: [raw_nesting_exceeds(m, depth - 2) for m in members],
        "prefetch nesting check and decode": lambda: with_prefetch(request, service.prefetch, depth),
        "- vital-sign searches, partly decoded": lambda: [decode_capped_search(m) for m in capped],
        "prefetch resolution": lambda: resolve_prefetch(
            service.prefetch, body, settings=settings, allowlist=allowlist, session=None
        ),
        "record build": build,
    }
    if order is not None:
        stages["rules (engine.evaluate)"] = lambda: engine.evaluate(record, order, kb, now)
    gc.freeze()  # the request, record and resolution kept here are not what a worker's collector scans
    try:
        return {name: median_ms(action, calls) for name, action in stages.items()}
    finally:
        gc.unfreeze()


def validation_costs(resources: Iterable[Mapping[str, Any]], calls: int) -> dict[str, tuple[int, float]]:
    """Per resource type: resources validated per record build, and mean microseconds per resource."""
    kb = load_knowledge()
    resources = list(resources)
    spent: defaultdict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    original = validation.Validator.validate

    def timed(self: validation.Validator, resource: Mapping[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return original(self, resource)
        finally:
            rtype = str(resource.get("resourceType"))
            spent[rtype] += time.perf_counter() - start
            count[rtype] += 1

    validation.Validator.validate = timed  # type: ignore[method-assign]
    try:
        for _ in range(calls):
            build_record(resources, kb, available=frozenset())
    finally:
        validation.Validator.validate = original  # type: ignore[method-assign]
    return {t: (count[t] // calls, spent[t] / count[t] * 1e6) for t in sorted(count)}


def whole_calls(workload: Workload, calls: int) -> dict[str, float]:
    """Median milliseconds of the whole in-process call (Flask test client): floor, service, no validation."""
    raw = json.dumps(workload.body).encode()
    url = f"/cds-services/{SERVICE_ID}"
    original = validation.Validator.validate
    logging.disable(logging.CRITICAL)  # the request log would otherwise time the terminal
    try:
        with tempfile.TemporaryDirectory() as tmp:
            service = create_app(Settings(auth_enabled=False, database_url=f"sqlite:///{Path(tmp) / 'fb.sqlite3'}"))
            floor = create_floor_app(Settings(auth_enabled=False))
            gc.freeze()  # as each gunicorn worker does
            clients = {"floor": floor.test_client(), "service": service.test_client()}
            out = {name: median_ms(_poster(client, url, raw), calls) for name, client in clients.items()}
            validation.Validator.validate = _no_validation  # type: ignore[method-assign]
            out["service, validation a no-op"] = median_ms(_poster(clients["service"], url, raw), calls)
    finally:
        validation.Validator.validate = original  # type: ignore[method-assign]
        logging.disable(logging.NOTSET)
        gc.unfreeze()
    return out


def _poster(client: FlaskClient, url: str, raw: bytes) -> Callable[[], object]:
    return lambda: client.post(url, data=raw, content_type="application/json")


def _no_validation(self: validation.Validator, resource: Mapping[str, Any]) -> None:
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", help="workload name or a unique part of it, e.g. 'typical'")
    parser.add_argument("--calls", type=int, default=0, help="calls per measurement (default 300, 40 if heavy)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this thread's CPU time (steadier when the machine is shared)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    staged = [w for w in build_workloads() if not w.needs_fhir_stub and w.service_id == SERVICE_ID]  # order stages
    matches = [w for w in staged if args.workload in w.name]
    if len(matches) != 1:
        print(f"choose one of: {[w.name for w in staged]}", file=sys.stderr)
        return 2
    workload = matches[0]
    calls = args.calls or (40 if workload.resources > 1000 else 300)
    print(f"{workload.name}: {workload.resources} resources, medians of {calls} calls (ms, {args.clock} clock)")
    for name, ms in whole_calls(workload, calls).items():
        print(f"  whole call, {name:32s} {ms:9.3f}")
    for name, ms in stage_times(workload, calls).items():
        print(f"  {name:44s} {ms:9.3f}")
    body = json.loads(json.dumps(workload.body))
    service = SERVICES[SERVICE_ID]
    settings = Settings(auth_enabled=False)
    resolution = resolve_prefetch(
        service.prefetch, body, settings=settings, allowlist=ServerAllowlist(settings.fhir_server_allowlist),
        session=None,
    )  # fmt: skip
    print("fhir.resources validation per record build (resources, µs each):")
    for rtype, (n, each) in validation_costs(resolution.resources, max(3, calls // 10)).items():
        print(f"  {rtype:28s} {n:5d} {each:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
