"""Prefetch resolution per the CDS Hooks decision table, with the FHIR server mocked by ``responses``."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.prefetch import resolve_prefetch
from cds_service.hooks.catalog import SERVICES
from cds_service.record import kinds
from tests.builders.requests import FHIR, PATIENT_ID, bundle, full_prefetch, hook_request, patient, settings

KEYS = SERVICES["ketamine-order-sign"].prefetch
ORDER_KINDS = frozenset(key.kind for key in KEYS)  # every kind but the procedures (patient-view's)
OO = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}


def resolve(body: dict[str, Any], **overrides: Any) -> Any:
    s = settings(**overrides)
    return resolve_prefetch(KEYS, body, settings=s, allowlist=ServerAllowlist(s.fhir_server_allowlist),
                            session=requests.Session())


def condition(cid: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{PATIENT_ID}"}}


def test_present_prefetch_is_used_without_any_request() -> None:
    prefetch = full_prefetch()
    prefetch["conditions"] = bundle(condition("c1"), condition("c2"))
    with responses.RequestsMock():  # any request would fail the test
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.states["conditions"] == "present"
    assert [r["id"] for r in res.resources if r["resourceType"] == "Condition"] == ["c1", "c2"]
    assert res.available == ORDER_KINDS
    assert res.gaps == () and res.unobtainable_required == ()


def test_null_means_no_data_and_is_not_refetched() -> None:
    prefetch = full_prefetch()
    prefetch["conditions"] = None
    prefetch["bloodPressure"] = None
    with responses.RequestsMock():
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.states["conditions"] == "null"
    assert kinds.CONDITIONS in res.available and kinds.BLOOD_PRESSURE in res.available
    assert res.unobtainable_required == () and res.gaps == ()


def test_operation_outcome_is_a_gap_and_not_refetched() -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = OO
    with responses.RequestsMock():
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.states["bloodPressure"] == "gap"
    assert kinds.BLOOD_PRESSURE not in res.available
    assert [(g.key, g.reason) for g in res.gaps] == [("bloodPressure", "the EHR reported an error while prefetching")]


def test_operation_outcome_for_required_key_is_unobtainable() -> None:
    prefetch = full_prefetch()
    prefetch["conditions"] = OO
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert [g.key for g in res.unobtainable_required] == ["conditions"]


SEARCH = "not the search Bundle the template asks for"
READ = "not the Patient the template reads"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("conditions", condition("c1"), f"the prefetched data was a resource of type Condition, {SEARCH}"),
        ("conditions", patient(), f"the prefetched data was a resource of type Patient, {SEARCH}"),
        ("patient", bundle(patient()), f"the prefetched data was a resource of type Bundle, {READ}"),
        ("patient", condition("c1"), f"the prefetched data was a resource of type Condition, {READ}"),
        ("medicationRequests", {"resourceType": "<"}, f"the prefetched data was a resource of unknown type, {SEARCH}"),
    ],
)
def test_required_key_of_the_wrong_shape_is_unobtainable_and_named(key: str, value: Any, reason: str) -> None:
    prefetch = full_prefetch()
    prefetch[key] = value
    with responses.RequestsMock():  # never refetched
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert [(g.key, g.reason) for g in res.unobtainable_required] == [(key, reason)]
    assert res.states[key] == "gap"


def test_optional_search_key_given_a_single_resource_is_a_named_gap() -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = {"resourceType": "Observation", "id": "bp1"}
    with responses.RequestsMock():
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.unobtainable_required == ()
    assert [(g.key, g.reason) for g in res.gaps] == [
        ("bloodPressure", f"the prefetched data was a resource of type Observation, {SEARCH}")
    ]
    assert kinds.BLOOD_PRESSURE not in res.available


@responses.activate
def test_read_answered_with_another_resource_type_is_a_named_gap() -> None:
    prefetch = full_prefetch()
    del prefetch["patient"]
    responses.get(f"{FHIR}/Patient/{PATIENT_ID}", json=bundle(patient()))
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert [(g.key, g.reason) for g in res.unobtainable_required] == [
        ("patient", "the FHIR server answered with a resource of type Bundle, not the Patient the template reads")
    ]


def test_error_outcome_inside_bundle_is_a_gap_but_warnings_are_ignored() -> None:
    prefetch = full_prefetch()
    warn = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "incomplete"}]}
    prefetch["depressionScores"] = bundle({"resourceType": "Observation", "id": "o1"}, OO)
    prefetch["bodyWeight"] = bundle({"resourceType": "Observation", "id": "w1"}, warn)
    res = resolve(hook_request(prefetch=prefetch))
    assert kinds.SCORES not in res.available and kinds.WEIGHT in res.available
    assert [g.key for g in res.gaps] == ["depressionScores"]
    ids = {r["id"] for r in res.resources}
    assert {"o1", "w1"} <= ids and not any(r["resourceType"] == "OperationOutcome" for r in res.resources)


@responses.activate
def test_absent_keys_are_fetched_in_parallel_with_the_token() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"], prefetch["bloodPressure"]
    auth = matchers.header_matcher({"Authorization": "Bearer tok-123"})
    responses.get(f"{FHIR}/Condition", json=bundle(condition("c9")), match=[
        auth, matchers.query_param_matcher({"patient": PATIENT_ID})])
    responses.get(f"{FHIR}/Observation", json=bundle({"resourceType": "Observation", "id": "bp1"}), match=[auth])
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="tok-123"))
    assert res.states["conditions"] == "fetched" and res.states["bloodPressure"] == "fetched"
    assert {"c9", "bp1"} <= {r["id"] for r in res.resources}
    assert res.available == ORDER_KINDS and res.gaps == ()
    assert len(responses.calls) == 2
    for call in responses.calls:
        assert call.request.headers["Authorization"] == "Bearer tok-123"


@responses.activate
def test_no_prefetch_at_all_fetches_every_key_and_reads_patient() -> None:
    responses.get(f"{FHIR}/Patient/{PATIENT_ID}", json=patient())
    for rtype in (
        "Condition", "MedicationRequest", "MedicationStatement", "Observation", "MedicationAdministration",
        "AllergyIntolerance",
    ):  # fmt: skip
        responses.get(f"{FHIR}/{rtype}", json=bundle())
    res = resolve(hook_request(fhir_server=FHIR))
    assert set(res.states.values()) == {"fetched"}
    assert res.available == ORDER_KINDS
    assert len(responses.calls) == len(KEYS) == 12
    assert not any("Authorization" in c.request.headers for c in responses.calls)  # no token, none sent


def test_every_missing_key_is_fetched_at_the_same_time() -> None:
    """All keys' requests must be in flight together: each answer waits until every key has asked (a
    barrier of len(KEYS) parties), so a pool smaller than the number of keys breaks it into gaps."""
    barrier = threading.Barrier(len(KEYS), timeout=20)

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        barrier.wait()
        body = patient() if "/Patient/" in request.url else bundle()
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), callback=answer)
        res = resolve(hook_request(fhir_server=FHIR))
        assert len(mock.calls) == len(KEYS)
    assert set(res.states.values()) == {"fetched"}
    assert res.gaps == () and res.unobtainable_required == ()


@responses.activate
def test_fetched_search_follows_next_pages_on_same_server() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"]
    page2 = f"{FHIR}/Condition?page=2"
    responses.get(f"{FHIR}/Condition", json=bundle(condition("c1"), next_url=page2),
                  match=[matchers.query_param_matcher({"patient": PATIENT_ID})])
    responses.get(page2, json=bundle(condition("c2")), match=[matchers.query_param_matcher({"page": "2"})])
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="t"))
    assert [r["id"] for r in res.resources if r["resourceType"] == "Condition"] == ["c1", "c2"]
    assert res.gaps == ()


@responses.activate
def test_paged_prefetch_is_completed_from_the_server() -> None:
    prefetch = full_prefetch()
    page2 = f"{FHIR}/MedicationRequest?page=2"
    prefetch["medicationRequests"] = bundle({"resourceType": "MedicationRequest", "id": "m1"}, next_url=page2)
    responses.get(page2, json=bundle({"resourceType": "MedicationRequest", "id": "m2"}))
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="t"))
    assert [r["id"] for r in res.resources if r["resourceType"] == "MedicationRequest"] == ["m1", "m2"]
    assert res.states["medicationRequests"] == "present" and res.gaps == ()


def test_paged_prefetch_without_server_keeps_first_page_and_says_so() -> None:
    prefetch = full_prefetch()
    prefetch["depressionScores"] = bundle({"resourceType": "Observation", "id": "s1"}, next_url=f"{FHIR}/x?p=2")
    res = resolve(hook_request(prefetch=prefetch))
    assert kinds.SCORES in res.available
    assert [(g.key, g.reason) for g in res.gaps] == [
        ("depressionScores", "only the first page of the prefetched results was sent")]


def test_latest_value_key_does_not_follow_next() -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle({"resourceType": "Observation", "id": "b1"}, next_url=f"{FHIR}/x?p=2")
    with responses.RequestsMock():
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.gaps == ()


@responses.activate
def test_page_cap_stops_paging_and_records_a_gap() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"]
    responses.get(f"{FHIR}/Condition", json=bundle(condition("c0"), next_url=f"{FHIR}/Condition?page=1"),
                  match=[matchers.query_param_matcher({"patient": PATIENT_ID})])
    for i in range(1, 6):
        responses.get(f"{FHIR}/Condition", json=bundle(condition(f"c{i}"), next_url=f"{FHIR}/Condition?page={i + 1}"),
                      match=[matchers.query_param_matcher({"page": str(i)})])
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR), fhir_max_pages=3)
    assert [r["id"] for r in res.resources if r["resourceType"] == "Condition"] == ["c0", "c1", "c2"]
    assert [(g.key, g.reason) for g in res.gaps] == [("conditions", "only the first 3 pages of results were read")]
    assert len(responses.calls) == 3
    assert kinds.CONDITIONS in res.available and res.unobtainable_required == ()


@responses.activate
def test_next_link_to_another_server_is_not_followed() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"]
    responses.get(f"{FHIR}/Condition", json=bundle(condition("c1"), next_url="https://evil.example.net/steal"))
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="t"))
    assert len(responses.calls) == 1
    assert "another server" in res.gaps[0].reason


@pytest.mark.parametrize(
    ("kwargs", "reason_part"),
    [
        ({"status": 500, "json": OO}, "HTTP 500"),
        ({"status": 401, "json": OO}, "HTTP 401"),
        ({"body": "<html>login</html>", "content_type": "text/html"}, "not JSON"),
        ({"json": {"resourceType": "Patient"}}, "not a Bundle"),
        ({"body": requests.ConnectTimeout()}, "did not answer in time"),
        ({"body": requests.ConnectionError()}, "could not be reached"),
        ({"json": OO}, "reported an error"),
    ],
)
def test_fetch_failures_of_optional_key_become_gaps(kwargs: dict[str, Any], reason_part: str) -> None:
    prefetch = full_prefetch()
    del prefetch["administrations"]
    with responses.RequestsMock() as mock:
        mock.get(f"{FHIR}/MedicationAdministration", **kwargs)
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.unobtainable_required == ()
    (gap,) = res.gaps
    assert gap.key == "administrations" and reason_part in gap.reason
    assert kinds.ADMINISTRATIONS not in res.available


@responses.activate
def test_fetch_failure_of_required_key_is_unobtainable() -> None:
    prefetch = full_prefetch()
    del prefetch["patient"]
    responses.get(f"{FHIR}/Patient/{PATIENT_ID}", status=404, json=OO)
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert [(g.key, g.reason) for g in res.unobtainable_required] == [("patient", "the FHIR server answered HTTP 404")]


def test_absent_key_without_fhir_server_is_unobtainable() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"], prefetch["bodyWeight"]
    res = resolve(hook_request(prefetch=prefetch))
    assert [g.key for g in res.unobtainable_required] == ["conditions"]
    assert "no fhirServer" in res.unobtainable_required[0].reason


def test_server_not_on_allowlist_is_never_called() -> None:
    prefetch = full_prefetch()
    del prefetch["bodyWeight"]
    with responses.RequestsMock():  # any request would fail
        res = resolve(hook_request(prefetch=prefetch, fhir_server="https://other.example.net/fhir", token="t"))
    assert "allowlist" in res.gaps[0].reason and res.gaps[0].key == "bodyWeight"


def test_plain_http_server_needs_an_explicit_http_entry() -> None:
    prefetch = full_prefetch()
    del prefetch["bodyWeight"]
    with responses.RequestsMock():
        res = resolve(hook_request(prefetch=prefetch, fhir_server="http://fhir.example.org/r4"))
    assert "plain http" in res.gaps[0].reason
    with responses.RequestsMock() as mock:
        mock.get("http://localhost:8080/fhir/Observation", json=bundle())
        res = resolve(hook_request(prefetch=prefetch, fhir_server="http://localhost:8080/fhir"),
                      fhir_server_allowlist=("http://localhost:8080/fhir",))
    assert res.gaps == ()


def test_required_key_missing_skips_other_fetches() -> None:
    prefetch = full_prefetch()
    prefetch["patient"] = OO
    del prefetch["bodyWeight"]
    with responses.RequestsMock():  # bodyWeight must not be fetched: the answer is 412 anyway
        res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert [g.key for g in res.unobtainable_required] == ["patient"]


@responses.activate
def test_redirect_to_another_host_is_refused_same_server_followed() -> None:
    prefetch = full_prefetch()
    del prefetch["bodyWeight"], prefetch["pregnancyTests"]
    responses.get(f"{FHIR}/Observation", status=302, headers={"Location": "https://evil.example.net/o"})
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="secret"))
    assert {g.key for g in res.gaps} == {"bodyWeight", "pregnancyTests"}
    assert all("different server" in g.reason for g in res.gaps)
    assert all("evil" not in str(c.request.url) for c in responses.calls)


@responses.activate
def test_same_server_redirect_is_followed() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"]
    responses.get(f"{FHIR}/Condition", status=301, headers={"Location": f"{FHIR}/v2/Condition?patient={PATIENT_ID}"})
    responses.get(f"{FHIR}/v2/Condition", json=bundle(condition("c1")))
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR))
    assert res.gaps == () and res.states["conditions"] == "fetched"


@responses.activate
def test_response_over_the_size_cap_is_refused() -> None:
    prefetch = full_prefetch()
    del prefetch["conditions"]
    big = bundle(*[condition(f"c{i}") for i in range(200)])
    responses.get(f"{FHIR}/Condition", body=json.dumps(big), content_type="application/fhir+json")
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR), fhir_max_response_bytes=1000)
    assert [g.key for g in res.unobtainable_required] == ["conditions"]
    assert "larger than" in res.unobtainable_required[0].reason


@responses.activate
def test_medication_reference_is_resolved_when_not_included() -> None:
    prefetch = full_prefetch()
    prefetch["medicationRequests"] = bundle(
        {"resourceType": "MedicationRequest", "id": "m1", "medicationReference": {"reference": "Medication/med-a"}},
        {"resourceType": "MedicationRequest", "id": "m2", "medicationReference": {"reference": "#contained"}},
        {"resourceType": "MedicationRequest", "id": "m3", "medicationReference": {"reference": "Medication/med-b"}},
        {"resourceType": "Medication", "id": "med-b"},
    )
    responses.get(f"{FHIR}/Medication", json=bundle({"resourceType": "Medication", "id": "med-a"}),
                  match=[matchers.query_param_matcher({"_id": "med-a", "_count": "1"})])
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="t"))
    meds = sorted(r["id"] for r in res.resources if r["resourceType"] == "Medication")
    assert meds == ["med-a", "med-b"]
    assert res.gaps == ()


def test_unresolvable_medication_reference_is_a_gap() -> None:
    prefetch = full_prefetch()
    prefetch["medicationStatements"] = bundle(
        {"resourceType": "MedicationStatement", "id": "s1", "medicationReference": {"reference": "Medication/x"}})
    res = resolve(hook_request(prefetch=prefetch))
    assert [g.key for g in res.gaps] == ["medicationReference"]


@responses.activate
def test_cookies_set_by_the_fhir_server_are_not_sent_back() -> None:
    from cds_service.fhir.client import new_session

    prefetch = full_prefetch()
    del prefetch["conditions"], prefetch["bodyWeight"]
    responses.get(f"{FHIR}/Condition", json=bundle(), headers={"Set-Cookie": "session=user-a; Path=/"})
    responses.get(f"{FHIR}/Observation", json=bundle())
    session = new_session()
    s = settings()
    for _ in range(2):
        resolve_prefetch(KEYS, hook_request(prefetch=prefetch, fhir_server=FHIR), settings=s,
                         allowlist=ServerAllowlist(s.fhir_server_allowlist), session=session)
    assert len(responses.calls) == 4
    assert all("Cookie" not in c.request.headers for c in responses.calls)


def test_audit_phases_are_timed() -> None:
    from contextlib import AbstractContextManager

    from cds_service.fhir.prefetch import Unobserved
    from cds_service.observability.audit import RequestAudit

    audit = RequestAudit()

    class Timed(Unobserved):  # the observer's phases go to the audit, as the web app's observer does
        def phase(self, name: str) -> AbstractContextManager[object]:
            return audit.phase(name)

    prefetch = full_prefetch()
    del prefetch["bodyWeight"]
    s = settings()
    with responses.RequestsMock() as mock:
        mock.get(f"{FHIR}/Observation", json=bundle())
        resolve_prefetch(KEYS, hook_request(prefetch=prefetch, fhir_server=FHIR), settings=s,
                         allowlist=ServerAllowlist(s.fhir_server_allowlist), session=requests.Session(),
                         observer=Timed())
    assert {"prefetch", "fhir_fetch"} <= set(audit.phases_ms)
