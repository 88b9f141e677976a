"""The compiled schema check of hook requests (``schemas.is_valid_json``) agrees with the ``jsonschema``
one that names the problems (``schemas.schema_issues``): it never passes a body the full check refuses,
and it passes every valid body but the few documented ones (a pattern-checked string ending in a newline
or holding a lone surrogate), which then only take the slower path. A 400 names the same issues as
before, because its issues always come from ``schema_issues``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cds_service.hooks import context as context_module
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.schemas import fast_validator, is_valid_json, schema_issues
from cds_service.web.app import create_app
from tests.builders.requests import (
    FHIR,
    bundle,
    full_prefetch,
    hook_request,
    other_order,
    patient,
    service_for,
    settings,
)

SCHEMAS = {s.hook: s.request_schema for s in SERVICES.values()}

# Strings near the edges of the request schema's patterns and lengths
STRINGS = st.sampled_from([
    "", "a", "pat-1", "pat.1", "Practitioner/doc-1", "Patient/p", "Device/d", "MedicationRequest/ket-1",
    "MedicationRequest/", "x" * 64, "x" * 65, "Practitioner/" + "x" * 64, "Practitioner/" + "x" * 65,
    "pat-1\n", "Practitioner/doc-1\n", "pat 1", "pat/1", "pé", "\U0001f600", "\ud800", "pat\ud800",
    "order-sign", "order-select", "Bundle", "Bearer", "bearer", "BEARER", "MedicationRequest",
    "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "not-a-uuid", FHIR, "not a uri", "null", "0",
]) | st.text(max_size=8)
SCALARS = (
    st.none() | st.booleans() | STRINGS
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, -1, 1, 300, 0.0, 1.0, -1.0, 1.5, float("nan"), float("inf"), 2**64, -(2**64)])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
    max_leaves=8,
)

# Where the request schema looks (and a little beyond): each path is replaced, deleted or left alone
PATHS: tuple[tuple[Any, ...], ...] = (
    (), ("hook",), ("hookInstance",), ("fhirServer",), ("fhirAuthorization",),
    ("fhirAuthorization", "access_token"), ("fhirAuthorization", "token_type"),
    ("fhirAuthorization", "expires_in"), ("fhirAuthorization", "scope"), ("fhirAuthorization", "subject"),
    ("fhirAuthorization", "patient"), ("context",), ("context", "userId"), ("context", "patientId"),
    ("context", "encounterId"), ("context", "selections"), ("context", "selections", 0),
    ("context", "draftOrders"), ("context", "draftOrders", "resourceType"), ("context", "draftOrders", "entry"),
    ("context", "draftOrders", "entry", 0), ("context", "draftOrders", "entry", 0, "resource"),
    ("context", "draftOrders", "entry", 0, "resource", "resourceType"),
    ("context", "draftOrders", "entry", 0, "resource", "id"),
    ("context", "draftOrders", "entry", 1, "resource", "id"),
    ("prefetch",), ("prefetch", "patient"), ("prefetch", "conditions"), ("prefetch", "other"),
    ("extension",), ("unknownTopLevel",),
)
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete"]), VALUES), max_size=3
)


def _bases() -> list[dict[str, Any]]:
    return [
        hook_request(),
        hook_request(orders=[other_order(), other_order("amox-2")], prefetch=full_prefetch()),
        hook_request(prefetch=full_prefetch(), fhir_server=FHIR, token="t"),
        hook_request("order-select"),
        hook_request("order-select", orders=[other_order(), other_order("amox-2")],
                     selections=["MedicationRequest/amox-1", "MedicationRequest/amox-2"], prefetch={"patient": None}),
    ]


def _mutate(body: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> dict[str, Any]:
    if not path:
        return value if action == "set" else body
    parent: Any = body
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return body
    last = path[-1]
    if isinstance(parent, dict) or (isinstance(parent, list) and isinstance(last, int) and last < len(parent)):
        if action == "set":
            parent[last] = value
        elif isinstance(parent, dict):
            parent.pop(last, None)
        else:
            del parent[last]
    return body


def _as_parsed(value: Any) -> Any:
    """What ``json.loads`` makes of the value once sent (NaN/Infinity and lone surrogates survive)."""
    return json.loads(json.dumps(value))


def _slow_path_only(value: Any) -> bool:
    """A string that ends in a newline or holds a lone surrogate: the documented reasons a valid body may
    not be passed by the compiled check."""
    if isinstance(value, str):
        return value.endswith("\n") or any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_slow_path_only(k) or _slow_path_only(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_slow_path_only(v) for v in value)
    return False


def _check_agreement(hook: str, body: Any) -> bool:
    """Assert the two checks agree on ``body``; True when the body is valid."""
    schema = SCHEMAS[hook]
    full_valid = schema_issues(schema, body) == []
    fast_valid = is_valid_json(schema, body)
    if fast_valid:
        assert full_valid, f"the compiled check passed a body the full check refuses: {body!r}"
    elif full_valid:
        assert _slow_path_only(body), f"the compiled check refused a valid body: {body!r}"
    return full_valid


@hyp_settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_bases()))), MUTATIONS)
def test_fast_and_full_checks_agree_on_mutated_requests(base: int, mutations: list[Any]) -> None:
    body: Any = copy.deepcopy(_bases()[base])
    hook = body["hook"]
    for path, action, value in mutations:
        body = _mutate(body, path, action, value) if isinstance(body, dict) else body
    _check_agreement(hook, _as_parsed(body))


@hyp_settings(max_examples=200, deadline=None)
@given(VALUES)
def test_fast_and_full_checks_agree_on_arbitrary_json(value: Any) -> None:
    for hook in SCHEMAS:
        _check_agreement(hook, _as_parsed(value))


def test_the_protocol_test_bodies_are_all_passed_by_the_fast_check() -> None:
    for body in _bases():
        assert _check_agreement(body["hook"], _as_parsed(body))


@pytest.mark.parametrize(
    ("mutate", "valid"),
    [
        (lambda b: None, True),
        (lambda b: b["context"].__setitem__("patientId", "x" * 64), True),
        (lambda b: b["context"].__setitem__("patientId", "x" * 65), False),
        (lambda b: b["context"].__setitem__("userId", "Practitioner/" + "x" * 64), True),
        (lambda b: b["context"].__setitem__("userId", "Practitioner/" + "x" * 65), False),
        (lambda b: b["context"].__setitem__("userId", "Device/d"), False),
        (lambda b: b.__setitem__("hookInstance", ""), False),
        (lambda b: b.__setitem__("hookInstance", "not-a-uuid"), True),  # format is an annotation, as before
        (lambda b: b.__setitem__("fhirServer", "not a uri"), True),
        (lambda b: b.__setitem__("prefetch", {"patient": None, "conditions": {}}), True),
        (lambda b: b.__setitem__("prefetch", {"patient": []}), False),
        (lambda b: b.__setitem__("prefetch", []), False),
        (lambda b: b.__setitem__("extension", {"any": [1, {"x": None}]}), True),
        (lambda b: b.__setitem__("extension", []), False),
        (lambda b: b.__setitem__("fhirServer", FHIR) or b.__setitem__("fhirAuthorization", {
            "access_token": "t", "token_type": "bearer", "expires_in": 0, "scope": "s", "subject": "c"}), True),
        (lambda b: b.__setitem__("fhirServer", FHIR) or b.__setitem__("fhirAuthorization", {
            "access_token": "t", "token_type": "Bearer", "expires_in": -1, "scope": "s", "subject": "c"}), False),
        (lambda b: b.__setitem__("fhirServer", FHIR) or b.__setitem__("fhirAuthorization", {
            "access_token": "t", "token_type": "Bearer", "expires_in": 1.0, "scope": "s", "subject": "c"}), True),
        (lambda b: b.__setitem__("fhirServer", FHIR) or b.__setitem__("fhirAuthorization", {
            "access_token": "t", "token_type": "Bearer", "expires_in": 1.5, "scope": "s", "subject": "c"}), False),
        (lambda b: b.__setitem__("fhirServer", FHIR) or b.__setitem__("fhirAuthorization", {
            "access_token": "t", "token_type": "Bearer", "expires_in": True, "scope": "s", "subject": "c"}), False),
        (lambda b: b.__setitem__("fhirAuthorization", {
            "access_token": "t", "token_type": "Bearer", "expires_in": 1, "scope": "s", "subject": "c"}), False),
        (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].__setitem__("id", "a/b"), False),
        (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].pop("resourceType"), False),
        (lambda b: b["context"]["draftOrders"].__setitem__("entry", {}), False),
        (lambda b: b.__setitem__("hook", "order-select"), False),
    ],
)
def test_boundary_bodies(mutate: Any, valid: bool) -> None:
    body = hook_request()
    mutate(body)
    body = _as_parsed(body)
    assert (schema_issues(SCHEMAS["order-sign"], body) == []) is valid
    assert is_valid_json(SCHEMAS["order-sign"], body) is valid


def test_a_valid_body_the_fast_check_does_not_pass_is_still_accepted() -> None:
    body = hook_request()
    body["context"]["patientId"] = "pat-1\n"  # Python's re: "$" matches before a final newline
    assert not is_valid_json(SCHEMAS["order-sign"], body)
    assert schema_issues(SCHEMAS["order-sign"], body) == []
    context_module.validate_request(SERVICES["ketamine-order-sign"], body, parsed_json=True)  # no HookError


def test_the_fast_check_is_used_only_for_parsed_json() -> None:
    body = hook_request()
    body["context"]["draftOrders"]["entry"] = tuple(body["context"]["draftOrders"]["entry"])  # not JSON
    assert is_valid_json(SCHEMAS["order-sign"], body)  # jsonschema_rs takes a tuple for an array...
    with pytest.raises(Exception, match="400"):  # ...jsonschema does not, and decides without parsed_json
        context_module.validate_request(SERVICES["ketamine-order-sign"], body)


def test_invalid_requests_get_the_issues_of_the_full_check(kb: Any) -> None:
    client = create_app(settings(), kb=kb).test_client()
    body = hook_request()
    body["context"] = {"userId": "doc-1"}
    body["hookInstance"] = ""
    response = client.post("/cds-services/ketamine-order-sign", json=body)
    assert response.status_code == 400
    expected = [i.to_json() for i in schema_issues(SCHEMAS["order-sign"], _as_parsed(body))]
    assert response.get_json()["issue"] == expected
    assert {i["expression"][0] for i in expected} == {
        "hookInstance", "context.userId", "context.patientId", "context.draftOrders"}


def test_a_valid_call_does_not_run_the_full_check(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(schema: str, instance: Any) -> list[Any]:
        calls.append(schema)
        return schema_issues(schema, instance)

    monkeypatch.setattr(context_module, "schema_issues", spy)
    client = create_app(settings(), kb=kb).test_client()
    for hook in SCHEMAS:
        # patient-view: no depressive disorder, so the screen ends the call after the conditions
        body = hook_request(hook, orders=[other_order()], prefetch={"patient": patient(), "conditions": bundle()})
        response = client.post(f"/cds-services/{service_for(hook)}", json=body)
        assert response.status_code == 200, response.get_json()
    assert calls == []
    body = hook_request(orders=[other_order()])
    del body["context"]["patientId"]
    assert client.post("/cds-services/ketamine-order-sign", json=body).status_code == 400
    assert calls == ["OrderSignRequest"]


def test_unknown_schema_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        fast_validator("NoSuchSchema")
