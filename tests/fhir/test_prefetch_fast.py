"""Bundle unpacking and Medication reference collection take a fast path for JSON dicts: other mappings
give the same answers, and each referenced Medication is asked for once, in order of first reference."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import requests
import responses
from responses import matchers

from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.prefetch import resolve_prefetch
from cds_service.hooks.catalog import PREFETCH as KEYS
from cds_service.record.fhirdata import bundle_resources
from tests.builders.requests import FHIR, PATIENT_ID, bundle, full_prefetch, hook_request, settings


def resolve(body: dict[str, Any]) -> Any:
    s = settings()
    return resolve_prefetch(KEYS, body, settings=s, allowlist=ServerAllowlist(s.fhir_server_allowlist),
                            session=requests.Session())


def _frozen(value: Any) -> Any:
    """The same data with every object as a read-only mapping (not a dict) and every array a list."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    return value


MIXED_BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "entry": [
        {"resource": {"resourceType": "Condition", "id": "c1"}},
        {"fullUrl": "no resource"},
        {"resource": "not an object"},
        "not an entry",
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning"}]}},
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}},
        {"resource": {"resourceType": "OperationOutcome"}},
        {"resource": {"resourceType": "Condition", "id": "c2"}},
    ],
}


def test_bundle_entries_are_unpacked_alike_from_dicts_and_other_mappings() -> None:
    resources, errors = bundle_resources(MIXED_BUNDLE)
    assert [r["id"] for r in resources] == ["c1", "c2"] and errors == 2
    frozen_resources, frozen_errors = bundle_resources(_frozen(MIXED_BUNDLE))
    assert [dict(r) for r in frozen_resources] == resources and frozen_errors == errors


def test_bundle_without_an_entry_list_has_no_resources() -> None:
    assert bundle_resources({"resourceType": "Bundle"}) == ([], 0)
    assert bundle_resources({"resourceType": "Bundle", "entry": {"resource": {}}}) == ([], 0)


def _medication_request(rid: str, reference: Any) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "medicationReference": reference}


@responses.activate
def test_each_referenced_medication_is_read_once_in_order_of_first_reference() -> None:
    prefetch = full_prefetch()
    prefetch["medicationRequests"] = bundle(
        _medication_request("m1", {"reference": "Medication/med-b"}),
        _medication_request("m2", {"reference": "Medication/med-a"}),
        _medication_request("m3", {"reference": "Medication/med-b"}),
        _medication_request("m4", {"reference": f"{FHIR}/Medication/med-c"}),  # absolute, same server
        _medication_request("m5", {"reference": "Medication/med-in-bundle"}),
        _medication_request("m6", {"reference": "#contained"}),
        _medication_request("m7", {"reference": "Medication/bad id!"}),
        _medication_request("m8", "not a reference"),
        {"resourceType": "Medication", "id": "med-in-bundle"},
    )
    prefetch["administrations"] = bundle(
        {"resourceType": "MedicationAdministration", "id": "a1",
         "medicationReference": {"reference": "Medication/med-a"}},
        {"resourceType": "Observation", "id": "o1", "medicationReference": {"reference": "Medication/med-x"}},
    )
    found = bundle(*({"resourceType": "Medication", "id": m} for m in ("med-b", "med-a", "med-c")))
    responses.get(f"{FHIR}/Medication", json=found,
                  match=[matchers.query_param_matcher({"_id": "med-b,med-a,med-c", "_count": "3"})])
    res = resolve(hook_request(prefetch=prefetch, fhir_server=FHIR, token="t"))
    assert len(responses.calls) == 1
    meds = [r["id"] for r in res.resources if r["resourceType"] == "Medication"]
    assert meds == ["med-in-bundle", "med-b", "med-a", "med-c"]
    assert res.gaps == ()


def test_unresolvable_references_are_counted_once_each() -> None:
    prefetch = full_prefetch()
    prefetch["medicationRequests"] = bundle(
        _medication_request("m1", {"reference": "Medication/x"}),
        _medication_request("m2", {"reference": "Medication/x"}),
        _medication_request("m3", {"reference": "Medication/y"}),
    )
    res = resolve(hook_request(prefetch=prefetch))  # no fhirServer: nothing can be read
    (gap,) = res.gaps
    assert gap.key == "medicationReference"
    assert gap.reason.startswith("2 referenced Medication resource(s) could not be read")


def test_prefetch_of_read_only_mappings_resolves_like_dicts() -> None:
    prefetch = full_prefetch()
    prefetch["conditions"] = bundle({"resourceType": "Condition", "id": "c1",
                                     "subject": {"reference": f"Patient/{PATIENT_ID}"}})
    prefetch["medicationRequests"] = bundle(
        _medication_request("m1", {"reference": "Medication/x"}), {"resourceType": "Medication", "id": "x"})
    body = hook_request(prefetch=prefetch)
    as_dicts = resolve(json.loads(json.dumps(body)))
    as_mappings = resolve(_frozen(body))
    assert [dict(r) for r in as_mappings.resources] == [dict(r) for r in as_dicts.resources]
    assert as_mappings.gaps == as_dicts.gaps == ()
    assert as_mappings.states == as_dicts.states
