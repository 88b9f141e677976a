"""Random but well-typed FHIR, and random junk, in the prefetch: never a 500, and rules still fire
on the valid remainder (an active schizophrenia Condition must always produce the psychosis card)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.config import Settings
from cds_service.web.app import create_app
from tests.reliability.requests_for_tests import KETAMINE_DRAFT, order_sign

SCHIZOPHRENIA = {
    "resourceType": "Condition",
    "id": "psychosis-1",
    "clinicalStatus": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
    },
    "code": {
        "coding": [{"system": "http://snomed.info/sct", "code": "58214004", "display": "Schizophrenia (disorder)"}]
    },
    "subject": {"reference": "Patient/p1"},
}
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-05-01", "gender": "female"}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(min_size=5000, max_size=20000).map(lambda s: s[:20000]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=25,
)
bad_dates = st.sampled_from(
    ["2026-13-45", "0001-01-01", "9999-12-31T23:59:59Z", "yesterday", "", "2026-02-30", 20261123]
)
codes = st.sampled_from(["58214004", "F20.9", "UNKNOWN-CODE", "", "85354-9", "29463-7", "44261-6", "6130"])
systems = st.sampled_from(
    ["http://snomed.info/sct", "http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm", "urn:local", 7]
)
units = st.sampled_from(["kg", "[lb_av]", "furlong", "mm[Hg]", "{score}", "mcg", "", None])
resource_types = st.sampled_from(
    [
        "Condition",
        "Observation",
        "MedicationStatement",
        "MedicationRequest",
        "MedicationAdministration",
        "Medication",
        "Banana",
        "",
        "OperationOutcome",
    ]
)


@st.composite
def fhir_like(draw: st.DrawFn) -> dict[str, Any]:
    """A resource shaped like FHIR, with wrong or missing pieces drawn at random."""
    resource: dict[str, Any] = {"resourceType": draw(resource_types), "id": draw(st.text(max_size=20))}
    if draw(st.booleans()):
        resource["code"] = {
            "coding": [{"system": draw(systems), "code": draw(codes)}],
            "text": draw(st.text(max_size=30)),
        }
    if draw(st.booleans()):
        resource["effectiveDateTime"] = draw(bad_dates)
    if draw(st.booleans()):
        resource["valueQuantity"] = {"value": draw(json_scalars), "unit": draw(units), "code": draw(units)}
    if draw(st.booleans()):
        resource["status"] = draw(st.sampled_from(["final", "active", "entered-in-error", "completed", 3, None]))
    if draw(st.booleans()):
        resource["clinicalStatus"] = draw(st.one_of(st.text(max_size=10), json_values))
    if draw(st.booleans()):
        resource[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return resource


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        node = {"n": node}
    return node


junk_entries = st.lists(st.one_of(fhir_like(), json_values.map(lambda v: v), st.just(_deep(40))), max_size=6)


def _bundle(resources: list[Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    condition_junk=junk_entries,
    medication_junk=junk_entries,
    observation_junk=junk_entries,
    other_key_value=st.one_of(json_values, fhir_like(), st.none()),
)
def test_junk_in_prefetch_never_500_and_valid_remainder_still_judged(
    kb, condition_junk: list[Any], medication_junk: list[Any], observation_junk: list[Any], other_key_value: Any
) -> None:
    app = _app(kb)
    prefetch = {
        "patient": PATIENT,
        "conditions": _bundle([SCHIZOPHRENIA, *condition_junk]),
        "medicationRequests": _bundle(medication_junk),
        "medicationStatements": None,
        "bloodPressure": _bundle(observation_junk),
        "bodyWeight": _bundle(observation_junk[::-1]),
        "depressionScores": other_key_value,
        "pregnancyTests": None,
        "administrations": None,
    }
    response = app.test_client().post(
        "/cds-services/ketamine-order-sign", json=order_sign(KETAMINE_DRAFT, prefetch=prefetch)
    )
    assert response.status_code != 500, response.get_data(as_text=True)[:500]
    payload = response.get_json()
    if response.status_code == 200:
        topics = [c["source"]["topic"]["code"] for c in payload["cards"]]
        assert topics[0] == "eligibility-summary"
        assert "psychosis" in topics, topics
    else:
        assert 400 <= response.status_code < 500
        assert payload["resourceType"] == "OperationOutcome" and payload["issue"]


_APPS: dict[int, Any] = {}


def _app(kb: Any) -> Any:
    """One app per knowledge base: building it per example would only slow the fuzzing down."""
    key = id(kb)
    if key not in _APPS:
        _APPS[key] = create_app(Settings(auth_enabled=False, database_url="sqlite://"), kb=kb)
    return _APPS[key]


REQUIRED_KEYS = ("patient", "conditions", "medicationRequests")


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    key=st.sampled_from(REQUIRED_KEYS),
    junk=st.one_of(fhir_like(), json_values, st.just(_deep(40)), st.just({"resourceType": "OperationOutcome"})),
)
def test_junk_in_place_of_a_required_key_is_a_4xx_naming_that_key(kb, key: str, junk: Any) -> None:
    """A required key whose whole value is junk (a non-Bundle resource for a search, another resource for
    the Patient read, a scalar, a list) is never judged as "no data": 400 (schema) or 412, naming the key."""
    prefetch: dict[str, Any] = {
        "patient": PATIENT,
        "conditions": _bundle([SCHIZOPHRENIA]),
        "medicationRequests": _bundle([]),
        "medicationStatements": None,
        "bloodPressure": None,
        "bodyWeight": None,
        "depressionScores": None,
        "pregnancyTests": None,
        "administrations": None,
    }
    prefetch[key] = junk
    response = _app(kb).test_client().post(
        "/cds-services/ketamine-order-sign", json=order_sign(KETAMINE_DRAFT, prefetch=prefetch)
    )
    payload = response.get_json()
    assert response.status_code in (400, 412), (response.status_code, payload)
    assert payload["resourceType"] == "OperationOutcome"
    named = [i for i in payload["issue"] if any(e.startswith(f"prefetch.{key}") for e in i.get("expression", []))]
    assert named, payload["issue"]
    assert named[0]["diagnostics"]
