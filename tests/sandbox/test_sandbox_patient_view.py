"""The patient-view hook over the fixture library, through the HTTP API, with full prefetch and with none.

Every fixture whose manifest entry states patient-view cards (``expected_patient_view``) gets exactly those,
from the request's prefetch and from the FHIR server alike; every other fixture of the library gets only info
cards of the two §11 topics; the deployment switch turns the TRD-candidate card off. The clock is the
fixtures' clock.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from flask.testing import FlaskClient

from cds_service.config import Settings
from cds_service.fhir.memory import MemoryServer, resources_from_bundle
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest, read_json
from cds_service.sandbox.requests import build_request, load_template
from tests.clock import NOW
from tests.sandbox.sandbox_support import (
    FHIR_BASE,
    card_contract_problems,
    card_mismatch,
    card_pairs,
    fhir_mock,
    frozen_datetime,
)

MANIFEST = load_manifest()
HOOK, SERVICE = "patient-view", "ketamine-patient-view"
STATED = [entry for entry in MANIFEST.entries if entry.expected_patient_view is not None]
CASES = [
    pytest.param(entry.name, mode, id=f"{entry.name}-{mode}")
    for entry in STATED
    for mode in ("prefetch", "fhir-server")
]
PATIENT_VIEW_TOPICS = {"course-status", "trd-candidate"}


def _client(tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> Iterator[FlaskClient]:
    from cds_service.web import app as web_app

    db = tmp_path_factory.mktemp("patient-view") / "feedback.sqlite3"
    settings = Settings(
        auth_enabled=False, fhir_server_allowlist=(FHIR_BASE,), database_url=f"sqlite:///{db}", **overrides
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(web_app, "datetime", frozen_datetime(NOW))  # the service's clock = the fixtures' clock
        yield web_app.create_app(settings).test_client()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    yield from _client(tmp_path_factory)


@pytest.fixture(scope="module")
def switched_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    yield from _client(tmp_path_factory, patient_view_trd_candidate=False)


def _request(name: str, prefetch: bool) -> tuple[dict[str, Any], MemoryServer]:
    entry = MANIFEST.get(name)
    bundle = MANIFEST.bundle(entry)
    template = load_template(entry.order_template)
    body = build_request(bundle, template, HOOK, anchor=MANIFEST.anchor, prefetch=prefetch, fhir_server=FHIR_BASE,
                         name=entry.name)  # fmt: skip
    body = roller.roll(body, NOW)
    body["hookInstance"] = str(uuid.uuid4())
    server = MemoryServer(resources_from_bundle(roller.roll(bundle, NOW, anchor=MANIFEST.anchor)), FHIR_BASE)
    return body, server


def _call(client: FlaskClient, body: dict[str, Any], server: MemoryServer) -> tuple[dict[str, Any], list[str]]:
    with fhir_mock(server) as mock:
        resp = client.post(f"/cds-services/{SERVICE}", json=body)
        fetched = [str(call.request.url) for call in mock.calls]
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    answer: dict[str, Any] = resp.get_json()
    return answer, fetched


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_patient_view_cards_match_manifest(client: FlaskClient, name: str, mode: str) -> None:
    entry = MANIFEST.get(name)
    body, server = _request(name, prefetch=mode == "prefetch")
    answer, fetched = _call(client, body, server)
    expected = [c.as_tuple() for c in entry.expected_for(HOOK)]
    problem = card_mismatch(card_pairs(answer), expected)
    assert problem is None, f"{name} ({mode}): {problem}\n  story: {entry.story}"
    for card in answer["cards"]:
        assert card["indicator"] == "info" and not card.get("overrideReasons"), card["summary"]
        assert not card_contract_problems(card, "none", None), card["summary"]
        assert "Patient/" not in card["summary"] + card["detail"] and "MedicationAdministration/" not in card["detail"]
    if mode == "prefetch":
        assert fetched == []
    else:
        assert fetched, "without prefetch the service reads the patient from the FHIR server"


def test_the_library_states_every_stage_and_both_cards() -> None:
    """Courses at each stage, TRD candidates, candidates with a contraindication, the non-depressed."""
    stated = {entry.name: [c.topic for c in entry.expected_patient_view or ()] for entry in STATED}
    assert {
        "course-one-infusion",
        "course-six-infusions-responder",
        "acute-course-last-interval-7-days",
        "esketamine-session-7-not-judged",
    } <= {n for n, topics in stated.items() if topics == ["course-status"]}
    assert {"eligible-mdd-iv", "pv-ketamine-366-days", "pv-ect-366-days"} <= {
        n for n, topics in stated.items() if topics == ["trd-candidate"]}  # fmt: skip
    assert {"bp-160-100", "psychosis-mdd-psychotic-features", "crps-pain", "ptsd-only"} <= {
        n for n, topics in stated.items() if not topics}  # fmt: skip
    for entry in STATED:  # the committed request file is the one the generator makes
        assert (MANIFEST.root / "requests" / entry.name / f"{HOOK}.json").is_file(), entry.name


def test_the_committed_request_is_a_patient_view_request_without_an_order() -> None:
    body = read_json(MANIFEST.root / "requests" / "eligible-mdd-iv" / f"{HOOK}.json")
    assert body["hook"] == HOOK and set(body["context"]) == {"userId", "patientId"}
    assert "procedures" in body["prefetch"] and "bodyWeight" not in body["prefetch"]


def test_every_library_patient_gets_at_most_info_cards_of_the_two_topics(client: FlaskClient) -> None:
    """patient-view never warns: whatever the chart, only course-status and trd-candidate, both info."""
    for entry in MANIFEST.entries:
        body, server = _request(entry.name, prefetch=True)
        answer, _ = _call(client, body, server)
        for card in answer["cards"]:
            assert card_pairs({"cards": [card]})[0][0] in PATIENT_VIEW_TOPICS, entry.name
            assert card["indicator"] == "info", entry.name


@pytest.mark.parametrize("mode", ["prefetch", "fhir-server"])
def test_the_deployment_switch_turns_the_trd_candidate_card_off(switched_off: FlaskClient, mode: str) -> None:
    body, server = _request("eligible-mdd-iv", prefetch=mode == "prefetch")
    assert _call(switched_off, body, server)[0] == {"cards": []}
    body, server = _request("course-six-infusions-responder", prefetch=mode == "prefetch")
    assert card_pairs(_call(switched_off, body, server)[0]) == [("course-status", "info")]


@pytest.mark.parametrize("reachable", [True, False])
def test_sessions_and_medication_history_that_cannot_be_read_are_said_not_passed_over(
    client: FlaskClient, reachable: bool
) -> None:
    """The administrations and the medication statements left out of the prefetch and read from the FHIR
    server: when it cannot be reached, a depressed patient's chart says the course and the treatment
    resistance could not be checked (info), instead of an empty answer."""
    body, server = _request("eligible-mdd-iv", prefetch=True)
    for key in ("administrations", "medicationStatements"):
        del body["prefetch"][key]
    if reachable:
        answer, _ = _call(client, body, server)
    else:
        with responses.RequestsMock() as mock:
            mock.add(responses.GET, re.compile(re.escape(FHIR_BASE) + r"/Medication(Statement|Administration)\b.*"),
                     body=requests.ConnectionError("unreachable"))  # fmt: skip
            resp = client.post(f"/cds-services/{SERVICE}", json=body)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
        answer = resp.get_json()
    cards = {c["source"]["topic"]["code"]: c for c in answer["cards"]}
    if reachable:
        assert list(cards) == ["trd-candidate"]
        assert cards["trd-candidate"]["summary"].startswith("Meets the criteria")
        return
    assert list(cards) == ["course-status", "trd-candidate"]
    assert all(c["indicator"] == "info" for c in cards.values())
    assert cards["course-status"]["summary"] == (
        "Ketamine or esketamine course not checked: the sessions given could not be read"
    )
    assert cards["trd-candidate"]["summary"] == (
        "Treatment resistance not checked: the medication history could not be read (0 of 2 trials found)"
    )
    assert "could not be reached" in cards["trd-candidate"]["detail"]
