"""``ketamine-cds serve`` as a newcomer runs it: gunicorn on loopback, no configuration beyond auth off;
discovery and the sample order-sign request (docs/examples) answer with valid cards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cds_service.hooks.schemas import schema_issues

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "examples" / "order-sign-ketamine.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    work = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETAMINE_CDS_")}
    env.update({"KETAMINE_CDS_AUTH": "off", "DATABASE_URL": f"sqlite:///{work}/feedback.sqlite3"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--threads", "2"],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            if proc.poll() is not None:
                raise AssertionError(f"serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                with urllib.request.urlopen(f"{base}/cds-services", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("serve did not start")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _request(url: str, body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_runs_under_gunicorn_and_answers_discovery(server: str) -> None:
    status, headers, body = _request(f"{server}/cds-services")
    assert status == 200
    assert "gunicorn" in headers.get("Server", "").lower()
    assert schema_issues("DiscoveryResponse", body) == []


def test_sample_order_sign_request_returns_valid_cards(server: str) -> None:
    status, _, body = _request(f"{server}/cds-services/ketamine-order-sign", SAMPLE.read_bytes())
    assert status == 200, body
    assert schema_issues("CdsServiceResponse", body) == []
    assert body["cards"][0]["source"]["topic"]["code"] == "eligibility-summary"


def test_errors_are_operation_outcomes(server: str) -> None:
    status, _, body = _request(f"{server}/cds-services/ketamine-order-sign", b"{not json")
    assert status == 400 and body["resourceType"] == "OperationOutcome"
