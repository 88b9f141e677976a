"""Sections 4-7 end to end: fixture hook requests (with prefetch) through the Flask app, and the
accept-and-re-sign loop check (apply the suggestion's ``update`` resource, sign again: the suggestion is gone).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_service.config import Settings
from cds_service.sandbox import roller
from cds_service.web.app import CLOCK_KEY, create_app
from tests.rules.support import NOW

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
MY_TOPICS = frozenset({
    "dose-anesthetic-range", "dose-above-standard", "dose-below-range", "infusion-too-fast",
    "frequency-above-protocol", "esketamine-dose-low", "esketamine-dose-high", "esketamine-first-dose",
    "nonresponse-after-infusions", "acute-course-complete", "chronic-pain-evidence", "ptsd-evidence",
    "suicidal-ideation", "pre-dose-data-missing",
})
DOSE_TOPICS = frozenset({"dose-anesthetic-range", "dose-above-standard", "dose-below-range", "infusion-too-fast",
                         "frequency-above-protocol"})
SIGN = "ketamine-order-sign"
SELECT = "ketamine-order-select"
UCUM = "http://unitsofmeasure.org"


def _patients() -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in MANIFEST["patients"]}


PATIENTS = _patients()
# every fixture patient: the section 4-7 cards must be exactly the manifest's (none where it expects none)
MY_CASES = sorted(PATIENTS)


@pytest.fixture(scope="module")
def client(kb) -> FlaskClient:  # type: ignore[no-untyped-def]
    settings = Settings(auth_enabled=False, database_url="sqlite://", public_base_url="https://cds.example.org")
    app = create_app(settings, kb=kb)
    app.extensions[CLOCK_KEY] = lambda: NOW
    return app.test_client()


def fixture_request(name: str, hook: str = "order-sign") -> dict[str, Any]:
    body = json.loads((FIXTURES / PATIENTS[name]["requests"][hook]).read_text())
    return roller.roll(body, NOW)


def post(client: FlaskClient, body: dict[str, Any], service: str = SIGN) -> list[dict[str, Any]]:
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_json()
    cards: list[dict[str, Any]] = response.get_json()["cards"]
    return cards


def mine(cards: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(c["source"]["topic"]["code"], c["indicator"]) for c in cards if c["source"]["topic"]["code"] in MY_TOPICS}


def card(cards: list[dict[str, Any]], topic: str) -> dict[str, Any]:
    hits = [c for c in cards if c["source"]["topic"]["code"] == topic]
    assert len(hits) == 1, [c["source"]["topic"]["code"] for c in cards]
    return hits[0]


def order_of(body: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = body["context"]["draftOrders"]["entry"][0]["resource"]
    return resource


def dosage_of(body: dict[str, Any]) -> dict[str, Any]:
    dosage: dict[str, Any] = order_of(body)["dosageInstruction"][0]
    return dosage


def update_resource(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The one update action of the response (it rides on the card that found the deviation)."""
    actions = [a for c in cards for s in c.get("suggestions", []) for a in s.get("actions", [])
               if a["type"] == "update"]  # fmt: skip
    assert len(actions) == 1, [c.get("suggestions") for c in cards]
    resource: dict[str, Any] = actions[0]["resource"]
    return resource


def has_update(cards: list[dict[str, Any]]) -> bool:
    return any(a["type"] == "update" for c in cards for s in c.get("suggestions", []) for a in s.get("actions", []))


def accept_and_resign(client: FlaskClient, body: dict[str, Any], cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply the update action's resource to draftOrders, as the EHR does, and sign again."""
    rewritten = update_resource(cards)
    again = copy.deepcopy(body)
    again["context"]["draftOrders"]["entry"][0]["resource"] = rewritten
    again["hookInstance"] = "7f1f0b56-3c59-4a43-8d5e-6a2b3d0c9e11"
    return post(client, again)


# --- every fixture patient of sections 4-7 -------------------------------------------------------------

@pytest.mark.parametrize("name", MY_CASES)
def test_fixture_cards_for_sections_4_to_7(client, name):  # type: ignore[no-untyped-def]
    cards = post(client, fixture_request(name))
    if PATIENTS[name]["expected"]:
        assert cards[0]["source"]["topic"]["code"] == "eligibility-summary"
    else:
        assert cards == []
    expected = {(e["topic"], e["indicator"]) for e in PATIENTS[name]["expected"] if e["topic"] in MY_TOPICS}
    assert mine(cards) == expected
    for c in cards:
        assert len(c["summary"]) <= 140


@pytest.mark.parametrize("name", [n for n in MY_CASES if "rewrite-on-card" in PATIENTS[n]["covers"]])
def test_accept_and_resign_loop(client, name):  # type: ignore[no-untyped-def]
    body = fixture_request(name)
    cards = post(client, body)
    original = order_of(body)
    rewritten = update_resource(cards)
    # everything but the dose and the infusion time is preserved
    for key in ("id", "status", "intent", "subject", "medicationCodeableConcept", "authoredOn", "reasonCode"):
        assert rewritten.get(key) == original.get(key), key
    assert rewritten["dosageInstruction"][0]["route"] == original["dosageInstruction"][0]["route"]
    assert rewritten["dosageInstruction"][0]["timing"]["repeat"]["duration"] == 40
    again = accept_and_resign(client, body, cards)
    assert {t for t, _ in mine(again)} & DOSE_TOPICS == set()


def test_summary_shows_the_dose_line(client):  # type: ignore[no-untyped-def]
    cards = post(client, fixture_request("dose-0.526-mg-per-kg"))
    detail = cards[0]["detail"]
    assert "0.526 mg/kg" in detail and "standard for 95 kg: 48 mg" in detail


# --- variations on the fixtures: weight units, dose units, unreadable doses, rates ---------------------

def _set_weight(body: dict[str, Any], quantity: dict[str, Any]) -> None:
    entries = body["prefetch"]["bodyWeight"]["entry"]
    assert entries, "the fixture has a weight"
    for e in entries:
        e["resource"]["valueQuantity"] = quantity


@pytest.mark.parametrize(("dose_mg", "topic"), [(79, "dose-above-standard"), (80, "dose-anesthetic-range")])
def test_weight_in_pounds(client, dose_mg, topic):  # type: ignore[no-untyped-def]
    body = fixture_request("eligible-mdd-iv")  # 80 kg
    _set_weight(body, {"value": 176.36, "unit": "lb", "system": UCUM, "code": "[lb_av]"})  # 79.996 kg
    dosage_of(body)["doseAndRate"][0]["doseQuantity"]["value"] = dose_mg
    assert topic in {t for t, _ in mine(post(client, body))}


@pytest.mark.parametrize(("value", "expected"), [(0.5, set()), (0.99, {"dose-above-standard"}),
                                                  (1.0, {"dose-anesthetic-range"})])
def test_dose_in_mg_per_kg(client, value, expected):  # type: ignore[no-untyped-def]
    body = fixture_request("eligible-mdd-iv")
    dosage_of(body)["doseAndRate"][0]["doseQuantity"] = {"value": value, "unit": "mg/kg", "system": UCUM,
                                                         "code": "mg/kg"}
    found = {t for t, _ in mine(post(client, body))}
    assert found == expected


def test_unreadable_dose_is_an_item_of_the_data_card_without_a_one_click_guess(client):  # type: ignore[no-untyped-def]
    body = fixture_request("eligible-mdd-iv")
    dosage_of(body)["doseAndRate"][0]["doseQuantity"] = {"value": 0.8, "unit": "UNT/ML", "system": UCUM, "code": "ML"}
    cards = post(client, body)
    data = card(cards, "pre-dose-data-missing")
    assert data["indicator"] == "warning" and "'ML'" in data["detail"] and "not done" in data["detail"]
    assert not has_update(cards) and len(data["summary"]) < 140


def test_unreadable_esketamine_dose_is_an_item_of_the_data_card(client):  # type: ignore[no-untyped-def]
    body = fixture_request("eligible-esketamine-56mg")
    dosage_of(body)["doseAndRate"][0]["doseQuantity"] = {"value": 2, "unit": "spray", "system": UCUM, "code": "{spray}"}
    cards = post(client, body)
    data = card(cards, "pre-dose-data-missing")
    assert data["summary"] == "Record a dose in mg per session before dosing"
    assert "not checked" in data["detail"] and data["overrideReasons"]
    assert "esketamine-rems" not in {c["source"]["topic"]["code"] for c in cards}


def test_rate_based_infusion_too_fast(client):  # type: ignore[no-untyped-def]
    body = fixture_request("eligible-mdd-iv")  # 40 mg for 80 kg
    dosage = dosage_of(body)
    del dosage["timing"]["repeat"]["duration"], dosage["timing"]["repeat"]["durationUnit"]
    dosage["doseAndRate"][0]["rateQuantity"] = {"value": 120, "unit": "mg/h", "system": UCUM, "code": "mg/h"}
    cards = post(client, body)
    assert "infusion-too-fast" in {t for t, _ in mine(cards)}
    rewritten = update_resource(cards)
    assert rewritten["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["value"] == 60
    assert {t for t, _ in mine(accept_and_resign(client, body, cards))} & DOSE_TOPICS == set()


def test_contained_medication_reference(client):  # type: ignore[no-untyped-def]
    body = fixture_request("dose-anesthetic-1.0-mg-per-kg")
    order = order_of(body)
    concept = order.pop("medicationCodeableConcept")
    order["contained"] = [{"resourceType": "Medication", "id": "med", "code": concept}]
    order["medicationReference"] = {"reference": "#med"}
    assert ("dose-anesthetic-range", "critical") in mine(post(client, body))


# --- order-select ---------------------------------------------------------------------------------------

def test_order_select_without_dose_has_no_dose_cards(client):  # type: ignore[no-untyped-def]
    body = fixture_request("dose-anesthetic-1.0-mg-per-kg", "order-select")
    dosage_of(body).pop("doseAndRate")
    cards = post(client, body, SELECT)
    assert cards and cards[0]["source"]["topic"]["code"] == "eligibility-summary"
    assert {t for t, _ in mine(cards)} & DOSE_TOPICS == set()


def test_order_select_with_dose_checks_it(client):  # type: ignore[no-untyped-def]
    cards = post(client, fixture_request("dose-anesthetic-1.0-mg-per-kg", "order-select"), SELECT)
    assert ("dose-anesthetic-range", "critical") in mine(cards)


def test_order_select_draft_without_medication_yet(client):  # type: ignore[no-untyped-def]
    body = fixture_request("eligible-mdd-iv", "order-select")
    order = order_of(body)
    order.pop("medicationCodeableConcept")
    order.pop("dosageInstruction")
    assert post(client, body, SELECT) == []


def test_crps_protocol_order_is_checked_by_rate_not_by_the_depression_bands(client):  # type: ignore[no-untyped-def]
    body = fixture_request("crps-pain")
    dosage = dosage_of(body)
    dosage["doseAndRate"] = [{"rateQuantity": {"value": 0.35, "unit": "mg/kg/h", "system": UCUM, "code": "mg/kg/h"}}]
    dosage["timing"] = {"repeat": {"duration": 4, "durationUnit": "h", "frequency": 1, "period": 1, "periodUnit": "d",
                                   "count": 10}}
    cards = post(client, body)
    assert mine(cards) == {("chronic-pain-evidence", "info")}
    assert "chronic pain, checked by rate (up to 0.5 mg/kg/h)" in cards[0]["detail"]
    dosage["doseAndRate"][0]["rateQuantity"]["value"] = 0.6
    assert ("dose-above-standard", "warning") in mine(post(client, body))
