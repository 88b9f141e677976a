"""The one pipeline: what it loads, what it tells its observer, and that by default it records nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from cds_service.config import Settings
from cds_service.hooks.pipeline import handle_hook_call
from cds_service.web.app import create_app
from cds_service.web.feedback import runtime_of
from tests.builders.requests import blood_pressure, bundle, full_prefetch, hook_request, other_order, settings
from tests.card_metrics import cards_counted
from tests.clock import NOW
from tests.hooks.recorder import Recorder

HEAVY = ("flask", "werkzeug", "sqlalchemy", "prometheus_client")


def _bp_prefetch() -> dict[str, Any]:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle(blood_pressure("bp-1", NOW - timedelta(days=1), 172, 104))
    return prefetch


def test_importing_the_pipeline_loads_neither_flask_nor_sqlalchemy_nor_prometheus() -> None:
    probe = (
        "import json, sys; import cds_service.hooks.pipeline; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(done.stdout) == []
    # and the check can fail: the web app does load them
    probe_web = probe.replace("cds_service.hooks.pipeline", "cds_service.web.app")
    done = subprocess.run([sys.executable, "-c", probe_web], capture_output=True, text=True, check=True, timeout=120)
    assert set(json.loads(done.stdout)) >= {"flask", "sqlalchemy", "prometheus_client"}


def test_the_observer_is_told_the_call_its_phases_and_the_cards_with_the_knowledge_base_version(kb: Any) -> None:
    observer = Recorder()
    body = hook_request(prefetch=_bp_prefetch())
    response = handle_hook_call("ketamine-order-sign", body, kb=kb, settings=settings(), now=NOW,
                                base_url="https://cds.test", observer=observer)  # fmt: skip
    calls = [e for e in observer.events if e[0] == "call"]
    assert calls == [("call", "ketamine-order-sign", "order-sign", "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea")]
    phases = [e[1] for e in observer.events if e[0] == "phase"]
    assert {"prefetch", "record", "rules", "render"} <= set(phases)
    (cards,) = [e for e in observer.events if e[0] == "cards"]
    shown = [(c["source"]["topic"]["code"], c["indicator"]) for c in response["cards"]]
    assert cards == ("cards", "ketamine-order-sign", tuple(shown), kb.version)
    assert ("hypertension-uncontrolled", "critical") in shown


def test_a_call_with_nothing_to_evaluate_notes_why_and_shows_no_cards(kb: Any) -> None:
    observer = Recorder()
    body = hook_request(orders=[other_order()], prefetch=full_prefetch())
    response = handle_hook_call("ketamine-order-sign", body, kb=kb, settings=settings(), now=NOW,
                                base_url="https://cds.test", observer=observer)  # fmt: skip
    assert response == {"cards": []}
    assert ("note", "no ketamine order") in observer.events
    assert not [e for e in observer.events if e[0] in ("cards", "phase")]


def test_by_default_the_pipeline_records_nothing_even_inside_the_web_app(kb: Any, tmp_path: Path) -> None:
    """The silent default: no card metric, no feedback record, although an app with a store is active."""
    app = create_app(Settings(auth_enabled=False, database_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}"), kb=kb)
    runtime = runtime_of(app)
    assert runtime is not None and runtime.store is not None and runtime.writer is not None
    before = cards_counted()
    with app.app_context():
        response = handle_hook_call("ketamine-order-sign", hook_request(prefetch=_bp_prefetch()), kb=kb,
                                    settings=settings(), now=NOW, base_url="https://cds.test")  # fmt: skip
    assert response["cards"]
    runtime.writer.flush(10)
    assert runtime.store.shown_counts(None) == []
    assert cards_counted() == before
    # and both checks can fail: the same call over HTTP (the recording observer) leaves both behind
    served = app.test_client().post("/cds-services/ketamine-order-sign", json=hook_request(prefetch=_bp_prefetch()))
    assert served.status_code == 200
    runtime.writer.flush(10)
    assert ("hypertension-uncontrolled", "critical", 1) in runtime.store.shown_counts(None)
    assert cards_counted() == before + len(served.get_json()["cards"])
    runtime.close()
