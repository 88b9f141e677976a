"""The HTTP edge: discovery, service calls, every error status, CORS. Record and rules are stubbed here
(the end-to-end tests use the real ones)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.hooks import gather, subjects
from cds_service.hooks.schemas import schema_issues
from cds_service.record.model import PatientFacts, PatientRecord
from cds_service.rules.engine import Evaluation, RuleSet
from cds_service.rules.findings import DeleteOrder, Finding, Indicator
from cds_service.web.app import create_app
from tests.builders.requests import FHIR, full_prefetch, hook_request, ketamine_order, other_order, settings

SIGN = "/cds-services/ketamine-order-sign"
SELECT = "/cds-services/ketamine-order-select"
BP = {"bp": "172/104", "date": "2026-11-20", "limit": "160/100"}


@pytest.fixture
def stub_rules(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record builder and engine replaced: the evaluation has a summary and a critical BP finding."""
    seen: list[Any] = []

    def build(resources: Any, kb: Any, *, available: Any, gaps: Any = (), **_context: Any) -> PatientRecord:
        seen.append((list(resources), available, gaps))
        return PatientRecord(patient=PatientFacts(None, None), available=available, data_gaps=tuple(gaps))

    def evaluate(record: Any, order: Any, kb: Any, now: Any) -> Evaluation:
        seen.append(order)
        return Evaluation(findings=(
            Finding("eligibility-summary", Indicator.INFO, variant="iv-ketamine",
                    facts={"drug": "IV ketamine", "indication": "depression", "verdict": "review"}),
            Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP, suggestions=(DeleteOrder(),)),
        ), checks=())

    monkeypatch.setattr(gather, "build_record", build)
    monkeypatch.setattr(RuleSet, "evaluate", staticmethod(evaluate))
    return seen


@pytest.fixture
def app(kb: Any) -> Flask:
    return create_app(settings(cors_allowed_origins=("https://sandbox.cds-hooks.org",)), kb=kb)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assert_outcome(response: Any, status: int, *, expression: str | None = None, text: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert schema_issues("OperationOutcome", body) == []
    if expression is not None:
        assert any(expression in i.get("expression", []) for i in body["issue"]), body
    if text is not None:
        assert any(text in i["diagnostics"] for i in body["issue"]), body
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_discovery_lists_every_service(client: FlaskClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    body = response.get_json()
    assert schema_issues("DiscoveryResponse", body) == []
    assert {s["id"]: s["hook"] for s in body["services"]} == {
        "ketamine-order-select": "order-select", "ketamine-order-sign": "order-sign",
        "ketamine-patient-view": "patient-view"}


def test_no_ketamine_order_returns_empty_cards_without_touching_prefetch(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("prefetch must not be resolved")

    monkeypatch.setattr(gather, "resolve_prefetch", never)
    monkeypatch.setattr(gather, "build_record", never)
    body = hook_request(orders=[other_order()], prefetch={"conditions": {"resourceType": "OperationOutcome"}})
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_order_select_ignores_unselected_ketamine(client: FlaskClient, stub_rules: list[Any]) -> None:
    body = hook_request("order-select", orders=[other_order(), ketamine_order()],
                        selections=["MedicationRequest/amox-1"])
    response = client.post(SELECT, json=body)
    assert response.get_json() == {"cards": []}
    assert stub_rules == []


def test_ketamine_order_sign_returns_valid_cards(client: FlaskClient, stub_rules: list[Any]) -> None:
    response = client.post(SIGN, json=hook_request(prefetch=full_prefetch()))
    assert response.status_code == 200
    body = response.get_json()
    assert schema_issues("CdsServiceResponse", body) == []
    codes = [c["source"]["topic"]["code"] for c in body["cards"]]
    assert codes == ["eligibility-summary", "hypertension-uncontrolled"]
    critical = body["cards"][1]
    assert critical["source"]["url"] == "https://cds.example.org/docs/rules#hypertension-uncontrolled"
    assert critical["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/ket-1"
    order = stub_rules[1]
    assert order.reference == "MedicationRequest/ket-1"


def test_each_ketamine_order_is_evaluated(client: FlaskClient, stub_rules: list[Any]) -> None:
    body = hook_request(orders=[ketamine_order("k1"), other_order(), ketamine_order("k2")], prefetch=full_prefetch())
    cards = client.post(SIGN, json=body).get_json()["cards"]
    assert len(cards) == 4
    refs = [c["suggestions"][0]["actions"][0]["resourceId"] for c in cards if "suggestions" in c]
    assert refs == ["MedicationRequest/k1", "MedicationRequest/k2"]


def test_missing_required_prefetch_without_server_is_412(client: FlaskClient, stub_rules: list[Any]) -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"]
    response = client.post(SIGN, json=hook_request(prefetch=prefetch))
    assert_outcome(response, 412, expression="prefetch.conditions", text="no fhirServer")


def test_required_prefetch_outcome_is_412(client: FlaskClient, stub_rules: list[Any]) -> None:
    prefetch = full_prefetch()
    prefetch["patient"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}
    assert_outcome(client.post(SIGN, json=hook_request(prefetch=prefetch, fhir_server=FHIR)), 412,
                   expression="prefetch.patient")


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(SIGN, data=b'{"hook": "order-sign",', content_type="application/json")
    assert_outcome(response, 400, text="not valid JSON")


def test_non_object_body_is_400(client: FlaskClient) -> None:
    assert_outcome(client.post(SIGN, json=[1, 2]), 400, text="JSON object")


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b["context"].pop("patientId"), "context.patientId"),
        (lambda b: b["context"].pop("draftOrders"), "context.draftOrders"),
        (lambda b: b["context"].__setitem__("userId", "doc-1"), "context.userId"),
        (lambda b: b["context"]["draftOrders"].__setitem__("resourceType", "List"),
         "context.draftOrders.resourceType"),
        (lambda b: b["context"]["draftOrders"]["entry"][0].pop("resource"), "context.draftOrders.entry[0].resource"),
        (lambda b: b.__setitem__("prefetch", {"patient": "Patient/1"}), "prefetch.patient"),
        (lambda b: b.__setitem__("fhirAuthorization", {"access_token": "t", "token_type": "Bearer",
                                                       "expires_in": 1, "scope": "s", "subject": "c"}),
         "fhirServer"),
    ],
)
def test_schema_violation_is_400_with_field_path(client: FlaskClient, mutate: Any, expression: str) -> None:
    body = hook_request()
    mutate(body)
    assert_outcome(client.post(SIGN, json=body), 400, expression=expression)


def test_each_missing_property_is_named_by_its_own_path(client: FlaskClient) -> None:
    body = hook_request()
    body["context"] = {}
    outcome = assert_outcome(client.post(SIGN, json=body), 400)
    named = {(i["expression"][0], i["diagnostics"]) for i in outcome["issue"]}
    assert named == {
        (f"context.{name}", f"context.{name}: '{name}' is a required property")
        for name in ("userId", "patientId", "draftOrders")
    }


def test_hook_must_match_service(client: FlaskClient) -> None:
    assert_outcome(client.post(SELECT, json=hook_request("order-sign")), 400, expression="hook",
                   text="does not match")


def test_selections_must_reference_draft_orders(client: FlaskClient) -> None:
    body = hook_request("order-select", selections=["MedicationRequest/ket-1", "MedicationRequest/nope"])
    assert_outcome(client.post(SELECT, json=body), 400, expression="context.selections[1]")


def test_order_select_requires_selections(client: FlaskClient) -> None:
    body = hook_request("order-select")
    del body["context"]["selections"]
    assert_outcome(client.post(SELECT, json=body), 400, expression="context.selections")


def test_json_nested_too_deep_is_400(kb: Any) -> None:
    client = create_app(settings(max_json_depth=20), kb=kb).test_client()
    body = hook_request(orders=[other_order()])  # nests 11 levels deep (draftOrders ... coding)
    nested: Any = "deep"
    for _ in range(18):
        nested = [nested]
    body["extension"] = {"a": nested}  # 1 (body) + 1 (extension) + 18 arrays = 20: allowed
    assert client.post(SIGN, json=body).status_code == 200
    body["extension"] = {"a": [nested]}  # 21
    assert_outcome(client.post(SIGN, json=body), 400, text="depth exceeds the limit of 20")
    body["extension"] = {"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[ brackets in a string do not count \\\" ["}
    assert client.post(SIGN, json=body).status_code == 200


def test_deep_prefetch_is_checked_only_when_read(kb: Any, stub_rules: list[Any]) -> None:
    client = create_app(settings(max_json_depth=20), kb=kb).test_client()
    deep: Any = {}
    for _ in range(25):
        deep = {"a": deep}
    prefetch = full_prefetch()
    prefetch["patient"] = {**prefetch["patient"], "extension": [deep]}
    other = client.post(SIGN, json=hook_request(orders=[other_order()], prefetch=prefetch))
    assert other.get_json() == {"cards": []}  # never read, never walked
    assert_outcome(client.post(SIGN, json=hook_request(prefetch=prefetch)), 400, expression="prefetch",
                   text="depth exceeds")
    assert stub_rules == []


def test_unknown_service_is_404(client: FlaskClient) -> None:
    assert_outcome(client.post("/cds-services/nope", json=hook_request()), 404, text="nope")
    assert_outcome(client.get("/no/such/path"), 404)


def test_wrong_method_is_405(client: FlaskClient) -> None:
    response = client.get(SIGN)
    assert_outcome(response, 405, text="use")
    assert "POST" in response.headers["Allow"]
    assert_outcome(client.delete("/cds-services"), 405)


def test_body_over_limit_is_413(kb: Any) -> None:
    client = create_app(settings(max_request_bytes=2000), kb=kb).test_client()
    body = hook_request()
    body["extension"] = {"padding": "x" * 3000}
    assert_outcome(client.post(SIGN, json=body), 413, text="2000 bytes")


def test_default_body_limit_is_10_mb(app: Flask) -> None:
    assert app.extensions["ketamine_settings"].max_request_bytes == 10 * 1024 * 1024
    # werkzeug's own cap sits one byte above, so a chunked body over the limit is seen (and refused)
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * 1024 * 1024 + 1


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    response = client.post(SIGN, data=json.dumps(hook_request()), content_type="text/plain")
    assert_outcome(response, 415, text="application/json")
    ok = client.post(SIGN, data=json.dumps(hook_request(orders=[other_order()])),
                     content_type="application/json; charset=utf-8")
    assert ok.status_code == 200


def test_unexpected_error_is_generic_500_without_phi_in_log(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("patient Jane Doe born 1980-04-02")

    monkeypatch.setattr(subjects, "find_ketamine_requests", explode)
    with caplog.at_level(logging.ERROR):
        response = client.post(SIGN, json=hook_request())
    body = assert_outcome(response, 500)
    assert body["issue"][0]["diagnostics"] == "Internal error"
    assert "Jane" not in response.get_data(as_text=True)
    assert "RuntimeError" in caplog.text and "Jane" not in caplog.text


# ----- CORS -----
ORIGIN = "https://sandbox.cds-hooks.org"


def preflight(client: FlaskClient, path: str, origin: str = ORIGIN) -> Any:
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "authorization,content-type"})


@pytest.mark.parametrize(("path", "method"), [("/cds-services", "GET"), (SIGN, "POST"), (f"{SIGN}/feedback", "POST")])
def test_preflight_allowed_origin(client: FlaskClient, path: str, method: str) -> None:
    response = preflight(client, path)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert method in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Allow"] == response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflight_for_unknown_service_is_404(client: FlaskClient) -> None:
    assert_outcome(preflight(client, "/cds-services/nope"), 404)


def test_preflight_other_origin_gets_no_cors_headers(client: FlaskClient) -> None:
    response = preflight(client, SIGN, origin="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_actual_response_carries_cors_header_for_allowed_origin(client: FlaskClient) -> None:
    response = client.get("/cds-services", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers.get("Vary", "")
    error = client.post("/cds-services/nope", json={}, headers={"Origin": ORIGIN})
    assert error.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_no_origins_configured_means_no_cors(kb: Any) -> None:
    client = create_app(settings(), kb=kb).test_client()
    assert "Access-Control-Allow-Origin" not in preflight(client, SIGN).headers


def test_wildcard_only_when_configured(kb: Any) -> None:
    client = create_app(settings(cors_allowed_origins=("*",)), kb=kb).test_client()
    response = preflight(client, SIGN, origin="https://anything.example")
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_preflight_needs_no_authentication(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_service.security import flask_auth
    from cds_service.security.verifier import AuthError

    class RejectAll:
        def verify(self, token: str, audience: str) -> Any:
            raise AuthError("bad-signature")

    monkeypatch.setattr(flask_auth, "build_verifier", lambda settings, **kw: RejectAll())
    client = create_app(settings(auth_enabled=True, cors_allowed_origins=(ORIGIN,)), kb=kb).test_client()
    assert preflight(client, SIGN).status_code == 204
    rejected = client.post(SIGN, json=hook_request(), headers={"Origin": ORIGIN})
    assert_outcome(rejected, 401)
    assert rejected.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_rules_page_is_html(client: FlaskClient) -> None:
    response = client.get("/docs/rules")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert 'id="hypertension-uncontrolled"' in response.get_data(as_text=True)
