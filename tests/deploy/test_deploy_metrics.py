"""/metrics: Prometheus text after real requests, the observe_* functions, and multi-worker aggregation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_service.observability import metrics
from tests.deploy.deploy_support import REPO, deployment_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition format into {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_scraped_after_real_requests(tmp_path: Path) -> None:
    client = deployment_app(tmp_path).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    after = resp.get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"endpoint": "healthz", "service": "", "status": "200"}
    assert delta("ketamine_cds_http_requests_total", **ok) == 3
    assert delta("ketamine_cds_http_request_duration_seconds_count", **ok) == 3
    assert delta("ketamine_cds_http_request_duration_seconds_bucket", le="+Inf", **ok) == 3
    assert delta("ketamine_cds_http_requests_total", endpoint="readyz", service="", status="200") == 1
    assert delta("ketamine_cds_http_requests_total", endpoint="unmatched", service="", status="404") == 1


def test_service_label_from_the_route(tmp_path: Path) -> None:
    """A call under a service id is labelled with that id (feedback is a real route taking <service_id>)."""
    client = deployment_app(tmp_path).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    resp = client.post("/cds-services/ketamine-order-sign/feedback", data="not json",
                       content_type="application/json")
    assert resp.status_code == 400
    after = client.get("/metrics").get_data(as_text=True)
    labels = {"endpoint": "cds_feedback", "service": "ketamine-order-sign", "status": "400"}
    assert value(after, "ketamine_cds_http_requests_total", **labels) - value(
        before, "ketamine_cds_http_requests_total", **labels) == 1


def test_observe_functions_count_with_bounded_labels(tmp_path: Path) -> None:
    client = deployment_app(tmp_path).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    metrics.observe_cards("ketamine-order-sign", [("eligibility-summary", "info"),
                                                  ("hypertension-uncontrolled", "critical"),
                                                  ("eligibility-summary", "info")])
    metrics.observe_fhir_fetch("ok", 0.12)
    metrics.observe_fhir_fetch("timeout", 2.0)
    metrics.observe_jwt_rejection("expired")
    metrics.observe_jwt_rejection("bad reason\nwith {braces}")  # odd text never becomes a label
    after = client.get("/metrics").get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ketamine_cds_cards_total", service="ketamine-order-sign", topic="eligibility-summary",
                 indicator="info") == 2
    assert delta("ketamine_cds_cards_total", service="ketamine-order-sign", topic="hypertension-uncontrolled",
                 indicator="critical") == 1
    assert delta("ketamine_cds_fhir_fetches_total", outcome="ok") == 1
    assert delta("ketamine_cds_fhir_fetches_total", outcome="timeout") == 1
    assert delta("ketamine_cds_fhir_fetch_duration_seconds_sum", outcome="timeout") == pytest.approx(2.0)
    assert delta("ketamine_cds_fhir_fetch_duration_seconds_bucket", outcome="ok", le="0.15") == 1
    assert delta("ketamine_cds_jwt_rejections_total", reason="expired") == 1
    assert delta("ketamine_cds_jwt_rejections_total", reason="other") == 1
    assert "braces" not in after


def test_observe_functions_never_raise() -> None:
    metrics.observe_fhir_fetch("ok", "not a number")  # type: ignore[arg-type]
    metrics.observe_cards("svc", [("only-one-element",)])  # type: ignore[list-item]
    metrics.observe_jwt_rejection(None)  # type: ignore[arg-type]


def test_jwt_rejection_counted_through_the_security_layer(tmp_path: Path) -> None:
    """Requests rejected by the real security layer show in /metrics by reason, and are timed."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec
    from flask import Flask
    from jwt.algorithms import ECAlgorithm

    from cds_service.config import Settings
    from cds_service.security import flask_auth

    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwk["kid"] = "k1"
    trusted = tmp_path / "clients.json"
    trusted.write_text(json.dumps({"clients": [{"iss": "https://ehr.example.org", "jwks": {"keys": [jwk]}}]}))
    app = Flask("deploy-auth-test")
    settings = Settings(auth_enabled=True, trusted_clients_file=str(trusted),
                        public_base_url="https://cds.example.org",
                        database_url=f"sqlite:///{tmp_path / 'replay.sqlite3'}")
    flask_auth.install(app, settings)
    metrics.install(app, settings)
    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    assert client.get("/cds-services").status_code == 401
    assert client.get("/cds-services", headers={"Authorization": "Bearer not.a.jwt"}).status_code == 401
    after = client.get("/metrics").get_data(as_text=True)

    def total(text: str, name: str) -> float:
        return sum(v for (n, _), v in samples(text).items() if n == name)

    assert value(after, "ketamine_cds_jwt_rejections_total", reason="missing-token") - value(
        before, "ketamine_cds_jwt_rejections_total", reason="missing-token") == 1
    assert total(after, "ketamine_cds_jwt_rejections_total") - total(before, "ketamine_cds_jwt_rejections_total") == 2
    # the rejected requests are timed and counted too (the timer runs before authentication)
    labels = {"endpoint": "unmatched", "service": "", "status": "401"}
    assert value(after, "ketamine_cds_http_request_duration_seconds_count", **labels) - value(
        before, "ketamine_cds_http_request_duration_seconds_count", **labels) == 2


# --- multi-process mode under the real production server --------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> str:
    req = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body: bytes = resp.read()
        return body.decode()


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited"
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


def _worker_pids(directory: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")}


def test_multiprocess_metrics_aggregate_all_gunicorn_workers(tmp_path: Path) -> None:
    """Under gunicorn with 2 workers, /metrics reports the sum over every worker, including a worker that
    has exited and been replaced (its counts are kept)."""
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    (mp_dir / "counter_999999.db").write_bytes(b"stale")  # left by an earlier run: cleared at start
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
    env.update({"PROMETHEUS_MULTIPROC_DIR": str(mp_dir),
                "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests/deploy'}"})
    # the production gunicorn options of `ketamine-cds serve`, with a test app (benchmarks/serve.py)
    cmd = [sys.executable, "-m", "benchmarks.serve", "deploy_wsgi_app:create", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "2", "--threads", "2"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    labels = {"endpoint": "slow", "service": "", "status": "200"}
    sent = 0

    def send(n: int) -> None:
        nonlocal sent
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(lambda _: _get(f"{base}/slow"), range(n))) == ["done"] * n
        sent += n

    try:
        _wait(f"{base}/healthz", proc)
        assert not (mp_dir / "counter_999999.db").exists()
        send(6)
        first = _worker_pids(mp_dir)
        assert first
        # Stop a worker that counted requests; the master replaces it. Keep calling until a new
        # process has counted some: the total then spans an exited worker and a new one.
        os.kill(next(iter(first)), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not (_worker_pids(mp_dir) - first) and time.monotonic() < deadline:
            send(4)
        assert _worker_pids(mp_dir) - first, "no replacement worker served a request"
        for _ in range(4):  # whichever worker answers the scrape reports the total of all workers
            assert value(_get(f"{base}/metrics"), "ketamine_cds_http_requests_total", **labels) == sent
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)


def test_install_creates_a_missing_multiprocess_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "fresh-tmpfs" / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(target))
    deployment_app(tmp_path)
    assert target.is_dir()


def test_prepare_multiprocess_dir_clears_only_sample_files(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"x")
    (tmp_path / "histogram_2.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("not a sample file")
    assert metrics.prepare_multiprocess_dir(str(tmp_path)) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
