"""The real service under the production server (gunicorn, 2 workers, Prometheus multi-process mode):
after concurrent hook calls, /metrics counts every call and every card by topic and
indicator (the per-call label caches of ``observability.metrics`` count like ``Metric.labels``), the
feedback store has recorded every card returned, and /metrics says so (``ketamine_cds_feedback_cards``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.workloads import build_workloads
from cds_service.feedback.store import FeedbackStore
from tests.deploy.deploy_support import REPO
from tests.deploy.test_deploy_metrics import _free_port, _wait, samples, value

SERVICE = "ketamine-order-sign"


def _post(url: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text: bytes = resp.read()
        return text.decode()


def test_hook_calls_over_two_workers_are_all_counted_and_every_card_recorded(tmp_path: Path) -> None:
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    database = tmp_path / "feedback.sqlite3"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "KETAMINE_CDS_"))}
    env.update({
        "PROMETHEUS_MULTIPROC_DIR": str(mp_dir),
        "PYTHONPATH": str(REPO),
        "KETAMINE_CDS_AUTH": "off",
        "KETAMINE_CDS_LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{database}",
    })
    cmd = [sys.executable, "-m", "benchmarks.serve", "cds_service.web.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "2", "--threads", "2"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/cds-services/{SERVICE}"
    workloads = {w.name: w for w in build_workloads() if not w.needs_fhir_stub}
    ketamine = json.dumps(workloads["2-ketamine-typical"].body).encode()
    invalid = json.dumps({**workloads["2-ketamine-typical"].body, "hookInstance": ""}).encode()
    calls = [ketamine] * 12 + [invalid] * 3
    try:
        _wait(f"{base}/healthz", proc)
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda body: _post(url, body), calls))
        statuses = Counter(status for status, _ in answers)
        assert statuses == {200: 12, 400: 3}
        cards = [c for status, out in answers if status == 200 for c in out["cards"]]
        assert len(cards) >= 12
        by_label = Counter((c["source"]["topic"]["code"], c["indicator"]) for c in cards)

        for _ in range(3):  # whichever worker answers the scrape reports the total of both
            text = _scrape(f"{base}/metrics")
            ok = {"endpoint": "call_service", "service": SERVICE}
            assert value(text, "ketamine_cds_http_requests_total", status="200", **ok) == 12
            assert value(text, "ketamine_cds_http_request_duration_seconds_count", status="200", **ok) == 12
            assert value(text, "ketamine_cds_http_requests_total", status="400", **ok) == 3
            counted = {
                (dict(labels)["topic"], dict(labels)["indicator"]): v
                for (name, labels), v in samples(text).items()
                if name == "ketamine_cds_cards_total" and dict(labels)["service"] == SERVICE
            }
            assert counted == by_label

        # the card writers linger before writing: wait (bounded) until every card is in the store
        store = FeedbackStore.open(f"sqlite:///{database}")
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                shown = Counter({(t, i): n for t, i, n in store.shown_counts(None)})
                if sum(shown.values()) >= len(cards):
                    break
                time.sleep(0.1)
            assert shown == by_label
        finally:
            store.close()
        # what became of each card's record is in /metrics too: all recorded, none waiting, none lost
        exported = samples(_scrape(f"{base}/metrics"))
        assert exported[("ketamine_cds_feedback_cards_total", (("outcome", "recorded"),))] == len(cards)
        for lost in ("queue-full", "write-failed", "store-unavailable", "closed"):  # exported at 0 from the start
            assert exported[("ketamine_cds_feedback_cards_total", (("outcome", lost),))] == 0
        assert exported[("ketamine_cds_feedback_queue_depth", ())] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
