"""``hooks.lazy``: a vital-sign Bundle decoded resource by resource reads exactly like ``json.loads``'s
dict, and the record decodes in full only the newest readings it keeps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from protocol_helpers import full_prefetch, hook_request

from cds_service.hooks.body import decode_hook_body
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.errors import HookError
from cds_service.hooks.lazy import LazyResource, decode_bundle
from cds_service.hooks.pipeline import with_prefetch
from cds_service.record.builder import build_record, max_vitals_per_kind

PICKS = ["resourceType", "id", "status", "category", "code", "subject", "effectiveDateTime", "effectivePeriod",
         "effectiveInstant", "issued"]  # fmt: skip
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6).filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
RESOURCES = st.dictionaries(st.sampled_from([*PICKS, "component", "valueQuantity", "note", "zz"]), VALUES,
                            max_size=8)  # fmt: skip


@hyp_settings(max_examples=200, deadline=None)
@given(RESOURCES, st.sampled_from([*PICKS, "component", "absent"]))
def test_a_lazy_resource_reads_like_the_dict(resource: dict[str, Any], key: str) -> None:
    raw = json.dumps(resource).encode()
    lazy = LazyResource(raw, "prefetch.bloodPressure")
    assert lazy.get(key, "default") == resource.get(key, "default")
    assert (key in lazy) is (key in resource)
    if key in resource:
        assert lazy[key] == resource[key]
    else:
        with pytest.raises(KeyError):
            lazy[key]
    assert list(lazy) == list(json.loads(raw)) and len(lazy) == len(resource)
    assert dict(lazy) == resource and lazy == resource
    assert dict(lazy.items()) == json.loads(raw)


def test_picked_values_stay_the_same_objects_once_the_whole_is_read() -> None:
    lazy = LazyResource(b'{"resourceType": "Observation", "code": {"text": "x"}, "component": [1]}', "here")
    code = lazy["code"]
    assert lazy._whole is None  # only the picking members so far
    assert lazy["component"] == [1]
    assert lazy._whole is not None and lazy["code"] is code


def _bundle(*resources: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "link": [{"relation": "self", "url": "x"}],
            "entry": [{"fullUrl": f"urn:{i}", "resource": r, "search": {"mode": "match"}}
                      for i, r in enumerate(resources)]}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "lazy"),
    [
        (_bundle({"resourceType": "Observation", "id": "a"}, {"resourceType": "Observation"}), True),
        (_bundle({"resourceType": "Observation"}, [1], None, "x"), True),  # odd entries stay as they are
        ({**_bundle({"resourceType": "Observation"}), "zz": 1}, False),  # not a FHIR R4 Bundle member
        ({"resourceType": "Bundle", "entry": [{"resource": {"a": 1}, "zz": 2}]}, False),
        ({"resourceType": "Bundle", "entry": {"resource": {}}}, False),
        ({"resourceType": "Bundle"}, False),
        ({"resourceType": "OperationOutcome", "issue": []}, False),
        ([1, 2], False),
        (None, False),
    ],
)
def test_a_bundle_decoded_resource_by_resource_equals_the_dict(value: Any, lazy: bool) -> None:
    decoded = decode_bundle(json.dumps(value).encode(), "prefetch.bloodPressure")
    assert decoded == value
    entries = decoded.get("entry") if isinstance(decoded, dict) else None
    resources = [e.get("resource") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    assert any(isinstance(r, LazyResource) for r in resources) is lazy


def test_a_number_beyond_a_double_is_refused_when_the_resource_is_read() -> None:
    raw = json.dumps(_bundle({"resourceType": "Observation", "valueQuantity": {"value": "@"}})).replace(
        '"@"', "1e400").encode()
    (entry,) = decode_bundle(raw, "prefetch.bloodPressure")["entry"]
    assert entry["resource"]["resourceType"] == "Observation"  # picking it out does not read the value
    with pytest.raises(HookError) as err:
        entry["resource"]["valueQuantity"]
    assert (err.value.status, err.value.issues[0].expression) == (400, "prefetch.bloodPressure")


def _blood_pressure(i: int) -> dict[str, Any]:
    loinc = "http://loinc.org"
    return {
        "resourceType": "Observation", "id": f"bp-{i}", "status": "final",
        "code": {"coding": [{"system": loinc, "code": "85354-9"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}T08:00:00Z",
        "component": [
            {"code": {"coding": [{"system": loinc, "code": "8480-6"}]},
             "valueQuantity": {"value": 120 + i % 30, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": loinc, "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        ],
    }  # fmt: skip


def test_the_record_reads_in_full_only_the_newest_vital_signs(kb: Any) -> None:
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = _bundle(*(_blood_pressure(i) for i in range(300)))
    service = SERVICES["ketamine-order-sign"]
    body = with_prefetch(service, decode_hook_body(json.dumps(hook_request(prefetch=prefetch)).encode(), 64), 64)
    readings = [e["resource"] for e in body["prefetch"]["bloodPressure"]["entry"]]
    assert all(isinstance(r, LazyResource) for r in readings)
    record = build_record(readings, kb, available=frozenset())
    eager = build_record([_blood_pressure(i) for i in range(300)], kb, available=frozenset())
    assert record == eager
    read_in_full = sum(r._whole is not None for r in readings)
    assert 0 < read_in_full <= max_vitals_per_kind(kb)
