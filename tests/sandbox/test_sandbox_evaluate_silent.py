"""``ketamine-cds evaluate`` runs the one pipeline silently, with the service's own settings.

As in the image and the Deployment, ``PROMETHEUS_MULTIPROC_DIR`` and ``DATABASE_URL`` are set: evaluating a fixture
leaves no metric file and no feedback row, while the web app answering the same request leaves both. A dateTime
without an offset is read in ``KETAMINE_CDS_LOCAL_TIMEZONE``, as the service reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DAY = "2026-11-23"
SERVE_THE_SAME_REQUEST = """
import dataclasses, json, sys
from cds_service.config import Settings
from cds_service.web.app import create_app
from cds_service.web.feedback import runtime_of
app = create_app(dataclasses.replace(Settings.from_env(), auth_enabled=False))
response = app.test_client().post("/cds-services/ketamine-order-sign", json=json.load(open(sys.argv[1])))
assert response.status_code == 200 and response.get_json()["cards"], response.get_data()
runtime_of(app).close()
"""


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    (tmp_path / "metrics").mkdir(exist_ok=True)
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.sqlite3'}", **more}  # fmt: skip


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cds_service", *argv], env=env, capture_output=True, text=True,
                          check=False, timeout=180)  # fmt: skip


def test_evaluate_leaves_no_metric_file_and_no_feedback_row(tmp_path: Path) -> None:
    env = _env(tmp_path)
    done = _cli(env, "evaluate", "bp-160-100", "--now", DAY, "--format", "json")
    assert done.returncode == 0, done.stderr
    cards = [(c["source"]["topic"]["code"], c["indicator"]) for c in json.loads(done.stdout)["cards"]]
    assert ("hypertension-uncontrolled", "critical") in cards
    assert list((tmp_path / "metrics").iterdir()) == []
    assert not (tmp_path / "feedback.sqlite3").exists()
    # and both checks can fail: the web app serving the same request leaves a metric file and the card records
    request = tmp_path / "request.json"
    request.write_text(_cli(env, "fixtures", "request", "bp-160-100", "--now", DAY).stdout, encoding="utf-8")
    subprocess.run([sys.executable, "-c", SERVE_THE_SAME_REQUEST, str(request)], env=env, check=True, timeout=180)
    assert list((tmp_path / "metrics").iterdir()) != []
    assert (tmp_path / "feedback.sqlite3").exists()


def _offset_less_request(tmp_path: Path) -> Path:
    """The fixture's request, its blood pressure's time without an offset."""
    done = _cli({**os.environ}, "fixtures", "request", "bp-160-100", "--now", DAY)
    body: dict[str, Any] = json.loads(done.stdout)
    for entry in body["prefetch"]["bloodPressure"]["entry"]:
        entry["resource"]["effectiveDateTime"] = entry["resource"]["effectiveDateTime"][:19]
    path = tmp_path / "offset-less.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "UTC"])
def test_evaluate_reads_times_without_an_offset_in_the_configured_zone(tmp_path: Path, zone: str) -> None:
    env = {**os.environ, "KETAMINE_CDS_LOCAL_TIMEZONE": zone}
    done = _cli(env, "evaluate", str(_offset_less_request(tmp_path)), "--now", DAY, "--format", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["cards"][0]["detail"]
    assert f"read as {zone} time" in summary


def test_evaluate_names_a_malformed_setting(tmp_path: Path) -> None:
    done = _cli({**os.environ, "KETAMINE_CDS_LOCAL_TIMEZONE": "Mars/Olympus_Mons"}, "evaluate", "bp-160-100")
    assert done.returncode == 2 and "KETAMINE_CDS_LOCAL_TIMEZONE" in done.stderr
