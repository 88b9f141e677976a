"""End to end through the real knowledge base, order parser, record builder, rules and renderer:
the Flask test client for the wire, ``responses`` for the EHR's FHIR server, a fixed clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from responses import matchers

from cds_service.hooks.errors import HookError
from cds_service.hooks.pipeline import handle_hook_call
from cds_service.hooks.schemas import schema_issues
from cds_service.web.app import CLOCK_KEY, create_app
from tests.builders.requests import FHIR, PATIENT_ID, bundle, full_prefetch, hook_request, ketamine_order, settings

SIGN = "/cds-services/ketamine-order-sign"
SELECT = "/cds-services/ketamine-order-select"
LOINC = "http://loinc.org"


def bp(systolic: float, diastolic: float, when: str = "2026-11-20T09:00:00Z", oid: str = "bp-1") -> dict[str, Any]:
    def comp(code: str, value: float) -> dict[str, Any]:
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                                  "code": "mm[Hg]"}}

    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when,
        "component": [comp("8480-6", systolic), comp("8462-4", diastolic)],
    }


@pytest.fixture
def app(kb: Any, now: datetime) -> Flask:
    app = create_app(settings(), kb=kb)
    app.extensions[CLOCK_KEY] = lambda: now
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def codes(body: dict[str, Any]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in body["cards"]]


def test_order_sign_with_high_blood_pressure_gives_critical_card(client: FlaskClient) -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle(bp(172, 104))
    response = client.post(SIGN, json=hook_request(prefetch=prefetch))
    assert response.status_code == 200
    body = response.get_json()
    assert schema_issues("CdsServiceResponse", body) == []
    assert codes(body)[0] == "eligibility-summary"
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "hypertension-uncontrolled")
    assert card["indicator"] == "critical"
    assert "172/104" in card["summary"]
    assert card["selectionBehavior"] == "at-most-one"
    delete = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"]
    assert delete == [{"type": "delete", "description": delete[0]["description"],
                       "resourceId": "MedicationRequest/ket-1"}]


def test_normal_blood_pressure_gives_no_hypertension_card(client: FlaskClient) -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle(bp(118, 76))
    body = client.post(SIGN, json=hook_request(prefetch=prefetch)).get_json()
    assert not {"hypertension-uncontrolled", "hypertension-elevated", "blood-pressure-undocumented"} & set(codes(body))


def test_data_gap_is_named_on_the_cards(client: FlaskClient) -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = {"resourceType": "OperationOutcome",
                                 "issue": [{"severity": "error", "code": "timeout"}]}
    body = client.post(SIGN, json=hook_request(prefetch=prefetch)).get_json()
    assert schema_issues("CdsServiceResponse", body) == []
    assert "Blood pressure records could not be obtained" in body["cards"][0]["detail"]


@responses.activate
def test_absent_keys_fetched_from_fhir_server_with_paging(client: FlaskClient) -> None:
    prefetch = full_prefetch()
    del prefetch["bloodPressure"], prefetch["conditions"]
    auth = matchers.header_matcher({"Authorization": "Bearer tok"})
    responses.get(f"{FHIR}/Observation", json=bundle(bp(180, 95)), match=[auth])
    page2 = f"{FHIR}/Condition?_page=2"
    responses.get(f"{FHIR}/Condition", json=bundle(next_url=page2),
                  match=[auth, matchers.query_param_matcher({"patient": PATIENT_ID})])
    psychosis = {"resourceType": "Condition", "id": "c-scz", "subject": {"reference": f"Patient/{PATIENT_ID}"},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                "code": "active"}]},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "58214004",
                                      "display": "Schizophrenia"}]}}
    responses.get(page2, json=bundle(psychosis), match=[auth, matchers.query_param_matcher({"_page": "2"})])
    body = client.post(SIGN, json=hook_request(prefetch=prefetch, fhir_server=FHIR, token="tok")).get_json()
    assert {"hypertension-uncontrolled", "psychosis"} <= set(codes(body))
    assert len(responses.calls) == 3


def test_order_select_evaluates_the_selected_order(client: FlaskClient) -> None:
    body = hook_request("order-select", orders=[ketamine_order("k-sel")], prefetch=full_prefetch())
    response = client.post(SELECT, json=body)
    assert response.status_code == 200
    out = response.get_json()
    assert schema_issues("CdsServiceResponse", out) == [] and codes(out)[0] == "eligibility-summary"


def test_required_data_unobtainable_is_412(client: FlaskClient) -> None:
    prefetch = full_prefetch()
    del prefetch["medicationRequests"]
    response = client.post(SIGN, json=hook_request(prefetch=prefetch, fhir_server="https://not-allowed.example/fhir"))
    assert response.status_code == 412
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["prefetch.medicationRequests"] and "allowlist" in issue["diagnostics"]


def test_pipeline_is_usable_without_flask(kb: Any, now: datetime) -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle(bp(165, 80))
    out = handle_hook_call("ketamine-order-sign", hook_request(prefetch=prefetch), kb=kb, settings=settings(),
                           now=now, base_url="https://cds.example.org")
    assert "hypertension-uncontrolled" in codes(out)
    with pytest.raises(HookError) as info:
        handle_hook_call("nope", hook_request(), kb=kb, settings=settings(), now=now, base_url="https://x")
    assert info.value.status == 404
