"""The seam: replay asks the service's own pipeline, gets the service's answer, and leaves no trace."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.config import Settings
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.pipeline import handle_hook_call
from cds_service.replay import evaluate as seam
from cds_service.replay.evaluate import ReplayService, read_types, service_for
from cds_service.sandbox.fixtures import load_manifest
from cds_service.sandbox.requests import load_template, materialize_order
from tests.card_metrics import cards_counted
from tests.replay.replay_support import SERTRALINE, generated, ketamine_order, patient, write_ndjson

ANCHOR = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # the fixture library's anchor day


def fixture_cases() -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(name, resources, the fixture's own order) of every fixture of the library."""
    from cds_service.fhir.memory import resources_from_bundle
    from cds_service.sandbox.requests import latest_weight_kg

    manifest = load_manifest()
    cases = []
    for entry in manifest.entries:
        resources = resources_from_bundle(manifest.bundle(entry))
        pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        order = materialize_order(
            load_template(entry.order_template),
            patient_ref=f"Patient/{pid}",
            order_id=f"order-{entry.name}",
            authored_on="2026-01-01T11:55:00Z",
            params=entry.order_params,
            weight_kg=latest_weight_kg(resources),
        )
        cases.append((entry.name, resources, order))
    return cases


CASES = fixture_cases()


def cards_of(response: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["source"]["topic"]["code"], c["indicator"]) for c in response["cards"]]


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_replay_answers_what_the_service_answers_for_every_fixture(kb: Any, hook: str) -> None:
    """The service itself (handle_hook_call) and the seam, on the very same request: the same cards."""
    service = ReplayService(kb, hook)
    differ = []
    for name, resources, order in CASES:
        pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        body = service.request(resources, order, patient_id=pid)
        expected = handle_hook_call(
            service_for(hook).id, body, kb=kb, settings=Settings(auth_enabled=False), now=ANCHOR,
            base_url=seam.CARD_BASE_URL,
        )  # fmt: skip
        outcome = service.evaluate(resources, order, patient_id=pid, now=ANCHOR)
        if outcome.status != 200 or list(outcome.cards) != cards_of(expected):
            differ.append(name)
    assert differ == []


def test_the_request_fills_every_prefetch_key_of_the_service(kb: Any) -> None:
    _name, resources, order = CASES[0]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    for hook in ("order-sign", "order-select"):
        body = ReplayService(kb, hook).request(resources, order, patient_id=pid)
        assert set(body["prefetch"]) == {key.key for key in service_for(hook).prefetch}
        assert body["prefetch"]["patient"]["id"] == pid
        assert body["context"]["draftOrders"]["entry"][0]["resource"] is order
        assert ("selections" in body["context"]) is (hook == "order-select")


def test_a_patient_missing_from_the_data_gives_a_null_patient_key(kb: Any) -> None:
    body = ReplayService(kb, "order-sign").request([], ketamine_order("p", "k", "2025-01-01"), patient_id="p")
    assert body["prefetch"]["patient"] is None


def test_the_input_is_never_changed(kb: Any) -> None:
    service = ReplayService(kb, "order-sign")
    for _name, resources, order in CASES:
        pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        before = copy.deepcopy((resources, order))
        service.evaluate(resources, order, patient_id=pid, now=ANCHOR)
        assert (resources, order) == before


def test_an_order_for_another_drug_gets_no_card(kb: Any) -> None:
    order = ketamine_order("p", "s1", "2025-01-01T10:00:00Z", medicationCodeableConcept=SERTRALINE)
    outcome = ReplayService(kb, "order-sign").evaluate([patient("p")], order, patient_id="p", now=ANCHOR)
    assert (outcome.status, outcome.cards) == (200, ())


def test_an_unexpected_failure_is_a_500_and_the_run_goes_on(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("patient data must never reach the log")

    monkeypatch.setattr(seam.pipeline, "decide", broken)  # a failure inside the pipeline's decide stage
    order = ketamine_order("p", "k", "2025-01-01T10:00:00Z")
    outcome = ReplayService(kb, "order-sign").evaluate([patient("p")], order, patient_id="p", now=ANCHOR)
    assert (outcome.status, outcome.cards) == (500, ())


def test_a_request_the_service_refuses_is_counted_with_its_status(kb: Any) -> None:
    from cds_service.hooks.errors import HookError

    service = ReplayService(kb, "order-sign")
    order = ketamine_order("p", "k", "2025-01-01T10:00:00Z")
    del order["resourceType"]  # a draft order the request schema rejects
    body = service.request([patient("p")], order, patient_id="p")
    with pytest.raises(HookError) as refused:
        handle_hook_call("ketamine-order-sign", body, kb=kb, settings=Settings(auth_enabled=False), now=ANCHOR,
                         base_url=seam.CARD_BASE_URL)  # fmt: skip
    outcome = service.evaluate([patient("p")], order, patient_id="p", now=ANCHOR)
    assert (outcome.status, outcome.cards) == (refused.value.status, ())


def test_the_resource_types_read_are_those_of_the_prefetch_templates() -> None:
    types = read_types("order-sign")
    for service in (s for s in SERVICES.values() if s.hook in ("order-sign", "order-select")):  # replay's hooks
        for key in service.prefetch:
            assert key.template.split("?")[0].split("/")[0] in types
    assert {"Patient", "Medication"} <= types


def test_evaluating_writes_no_card_metric(kb: Any) -> None:
    _name, resources, order = CASES[0]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")

    before = cards_counted()
    outcome = ReplayService(kb, "order-sign").evaluate(resources, order, patient_id=pid, now=ANCHOR)
    assert outcome.cards
    assert cards_counted() == before


def test_a_replay_run_leaves_nothing_in_metrics_or_the_feedback_store(tmp_path: Path) -> None:
    """As in the image and the Deployment: PROMETHEUS_MULTIPROC_DIR and DATABASE_URL set."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    database = tmp_path / "feedback.sqlite3"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "DATABASE_URL": f"sqlite:///{database}"}
    export = write_ndjson(tmp_path / "export", generated(12))
    command = [sys.executable, "-m", "cds_service", "replay", str(export), "--actual-orders", "--workers", "2",
               "--format", "json", "--work-dir", str(tmp_path / "work"), "--quiet"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"cards": ' in done.stdout and '"cards": 0,' not in done.stdout
    assert list(metrics_dir.iterdir()) == []
    assert not database.exists()
    # and the check above can fail: the service's card metric does leave a file with the same setting
    probe = "from cds_service.observability import metrics; metrics.observe_cards('s', [('t', 'info')])"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=60)
    assert list(metrics_dir.iterdir()) != []


def test_the_service_settings_that_change_an_answer_come_from_the_environment(
    kb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds_service.config import ConfigError

    monkeypatch.setenv("KETAMINE_CDS_LOCAL_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("KETAMINE_CDS_AUTH", "on")
    service = ReplayService(kb, "order-sign")
    assert str(service.zone) == "Europe/Berlin"
    assert service.settings.auth_enabled is False and service.settings.fhir_server_allowlist == ()
    monkeypatch.setenv("KETAMINE_CDS_LOCAL_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ConfigError, match="KETAMINE_CDS_LOCAL_TIMEZONE"):
        ReplayService(kb, "order-sign")
