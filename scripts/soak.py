"""Soak test: the service under the production server, a bounded mixed load, worker memory start/end.

Not part of the default test run. Usage (from the repository root):

    .venv/bin/python scripts/soak.py [--seconds 120] [--max-requests 20000] [--concurrency 4]

Starts ``ketamine-cds serve`` (gunicorn) on a free loopback port with auth off, sends a mix of
discovery calls, non-ketamine orders, ketamine orders with a realistic prefetch, order-select calls and
malformed bodies until the request or time budget is spent, then prints errors, latency percentiles and
the resident memory of each worker at start (after warm-up) and end. Exits 1 on any 5xx or transport
error or unexpected status, or when worker memory grows by more than ``--max-growth-mb``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def _observation(rid: str, code: str, when: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": when,
        **value,
    }


def _prefetch(rng: random.Random) -> dict[str, Any]:
    """About a hundred resources: a patient on sertraline then venlafaxine, vitals, PHQ-9 scores."""
    days = [f"2026-{m:02d}-{d:02d}" for m in range(1, 12) for d in (3, 17)]
    bp = [
        _observation(
            f"bp{i}",
            "85354-9",
            d,
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {"value": rng.randint(110, 165), "unit": "mm[Hg]"},
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": {"value": rng.randint(65, 102), "unit": "mm[Hg]"},
                },
            ],
        )
        for i, d in enumerate(days)
    ]
    weights = [
        _observation(f"w{i}", "29463-7", d, valueQuantity={"value": 70 + i / 10, "unit": "kg", "code": "kg"})
        for i, d in enumerate(days[-4:])
    ]
    scores = [_observation(f"s{i}", "44261-6", d, valueInteger=rng.randint(12, 24)) for i, d in enumerate(days)]
    meds = [
        {
            "resourceType": "MedicationStatement",
            "id": "ms1",
            "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "312941"}]},
            "effectivePeriod": {"start": "2026-01-05", "end": "2026-04-10"},
            "dosage": [
                {
                    "doseAndRate": [{"doseQuantity": {"value": 100, "unit": "mg"}}],
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                }
            ],
        },
        {
            "resourceType": "MedicationStatement",
            "id": "ms2",
            "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "313585"}]},
            "effectivePeriod": {"start": "2026-05-01"},
            "dosage": [
                {
                    "doseAndRate": [{"doseQuantity": {"value": 150, "unit": "mg"}}],
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                }
            ],
        },
    ]
    conditions = [
        {
            "resourceType": "Condition",
            "id": "c1",
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.2"}]},
        }
    ]
    return {
        "patient": {"resourceType": "Patient", "id": "soak-patient", "birthDate": "1979-03-02", "gender": "male"},
        "conditions": _bundle(conditions),
        "medicationRequests": _bundle([]),
        "medicationStatements": _bundle(meds),
        "bloodPressure": _bundle(bp[-5:]),
        "bodyWeight": _bundle(weights),
        "depressionScores": _bundle(scores),
        "pregnancyTests": _bundle([]),
        "administrations": _bundle([]),
    }


def _draft(code: str, display: str, dose: dict[str, Any] | None) -> dict[str, Any]:
    draft: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": f"draft-{uuid.uuid4().hex[:8]}",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/soak-patient"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
    }
    if dose:
        draft["dosageInstruction"] = [dose]
    return draft


Template = tuple[str, str, bytes | None, int]


def _request_mix(rng: random.Random) -> list[Template]:
    """(method, path, body, expected status) templates; each call gets a fresh hookInstance."""
    iv = {
        "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]},
        "timing": {"repeat": {"duration": 40, "durationUnit": "min"}},
        "doseAndRate": [
            {"doseQuantity": {"value": 36, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
        ],
    }
    ketamine = _draft("6130", "ketamine", iv)
    other = _draft("312941", "sertraline 50 MG Oral Tablet", None)
    prefetch = _prefetch(rng)

    def body(hook: str, draft: dict[str, Any], with_prefetch: bool) -> bytes:
        context: dict[str, Any] = {
            "userId": "Practitioner/soak",
            "patientId": "soak-patient",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
        }
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{draft['id']}"]
        payload = {"hook": hook, "hookInstance": "HOOK-INSTANCE", "context": context}
        if with_prefetch:
            payload["prefetch"] = prefetch
        return json.dumps(payload).encode()

    return [
        ("GET", "/cds-services", None, 200),
        ("POST", "/cds-services/ketamine-order-sign", body("order-sign", other, True), 200),
        ("POST", "/cds-services/ketamine-order-sign", body("order-sign", other, True), 200),
        ("POST", "/cds-services/ketamine-order-sign", body("order-sign", ketamine, True), 200),
        ("POST", "/cds-services/ketamine-order-sign", body("order-sign", ketamine, True), 200),
        ("POST", "/cds-services/ketamine-order-select", body("order-select", ketamine, True), 200),
        ("POST", "/cds-services/ketamine-order-sign", b'{"hook": "order-sign", "context": ', 400),  # malformed
        ("POST", "/cds-services/no-such-service", body("order-sign", other, False), 404),
    ]


def _worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(entry.name))
    return sorted(pids)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("service did not become ready")


def _drive(
    port: int, templates: list[Template], stop_at: float, budget: int, seed: int
) -> tuple[list[float], list[str], int]:
    """Send requests on one keep-alive connection; errors: 5xx, transport errors, and any status other
    than the one the template expects (a ketamine call that got 400 or 412 is an error too)."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    while sent < budget and time.monotonic() < stop_at:
        method, path, body, expected = rng.choice(templates)
        if body is not None:
            body = body.replace(b"HOOK-INSTANCE", str(uuid.uuid4()).encode())
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != expected:
                errors.append(f"{response.status} (expected {expected}) {method} {path}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__} {method} {path}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies.append((time.perf_counter() - start) * 1000)
        sent += 1
    conn.close()
    return latencies, errors, sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-growth-mb", type=float, default=40.0)
    args = parser.parse_args()

    port = _free_port()
    env = {
        **os.environ,
        "KETAMINE_CDS_AUTH": "off",
        "DATABASE_URL": "sqlite:////tmp/ketamine-cds-soak.sqlite3",
        "KETAMINE_CDS_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/ketamine-cds"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(port, time.monotonic() + 30)
        templates = _request_mix(random.Random(7))
        _drive(port, templates, time.monotonic() + 5, 200, seed=1)  # warm-up: imports, caches, first requests
        workers = _worker_pids(server.pid)
        rss_start = {pid: _rss_mb(pid) for pid in workers}

        stop_at = time.monotonic() + args.seconds
        per_thread = args.max_requests // args.concurrency
        started = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(
                pool.map(lambda i: _drive(port, templates, stop_at, per_thread, seed=100 + i), range(args.concurrency))
            )
        elapsed = time.monotonic() - started
        rss_end = {pid: _rss_mb(pid) for pid in _worker_pids(server.pid)}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    latencies = sorted(x for r in results for x in r[0])
    errors = [e for r in results for e in r[1]]
    sent = sum(r[2] for r in results)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    growth = max((rss_end.get(pid, 0.0) - rss_start[pid] for pid in rss_start), default=0.0)
    lost = sorted(set(rss_start) - set(rss_end))
    print(f"requests sent      {sent} in {elapsed:.1f}s ({sent / elapsed:.0f}/s, concurrency {args.concurrency})")
    print(f"errors             {len(errors)}" + (f"  e.g. {errors[:3]}" if errors else ""))
    print(f"latency ms         p50 {q[49]:.1f}  p95 {q[94]:.1f}  p99 {q[98]:.1f}  max {latencies[-1]:.1f}")
    for pid in sorted(rss_start):
        end = rss_end.get(pid)
        print(f"worker {pid} RSS MB  start {rss_start[pid]:.1f}  end {end:.1f}" if end else f"worker {pid} exited")
    print(f"max worker growth  {growth:.1f} MB (limit {args.max_growth_mb:g} MB)")
    failed = bool(errors) or bool(lost) or growth > args.max_growth_mb
    print("RESULT", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
