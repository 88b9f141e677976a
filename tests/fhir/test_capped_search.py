"""A vital-sign search decoded only as far as the record reads it (``fhir/capped_search.py``): its Bundle as sent
but for the entries' Observations, which are ``PartialResource``s that complete to the whole resource (with the
changes the record made to their intake elements); anything else, and any search that may hold a number beyond
a double, decoded whole."""

from __future__ import annotations

import json

import pytest

from cds_service.fhir.capped_search import decode_capped_search
from cds_service.record import partial
from cds_service.record.partial import PartialResource


def test_a_partial_reading_completes_to_the_whole_resource_with_its_changes() -> None:
    raw = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 2, "link": [], "entry": [
        {"fullUrl": "urn:a", "resource": {"resourceType": "Observation", "id": "a", "status": "final",
                                          "valueQuantity": {"value": 81}, "effectiveDateTime": "2026-11-20T10:00"}},
        {"resource": {"resourceType": "Condition", "id": "c"}}, {"search": {"mode": "match"}}]}).encode()  # fmt: skip
    bundle = decode_capped_search(raw)
    assert bundle is not None and bundle["total"] == 2 and bundle["entry"][0]["fullUrl"] == "urn:a"
    reading, condition = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
    assert isinstance(reading, PartialResource) and dict(reading) == {
        "resourceType": "Observation", "id": "a", "status": "final", "effectiveDateTime": "2026-11-20T10:00"}
    assert type(condition) is dict and condition == {"resourceType": "Condition", "id": "c"}
    changed = partial.copied(reading)
    changed["effectiveDateTime"] = "2026-11-20T10:00:00+00:00"
    assert isinstance(changed, PartialResource) and reading["effectiveDateTime"] == "2026-11-20T10:00"
    assert partial.complete(changed) == {"resourceType": "Observation", "id": "a", "status": "final",
                                         "valueQuantity": {"value": 81},
                                         "effectiveDateTime": "2026-11-20T10:00:00+00:00"}  # fmt: skip
    assert type(partial.complete(changed)) is dict and type(reading.copy()) is type(reading)


@pytest.mark.parametrize(("text", "whole"), [
    ("1e400", True), ("-2E+309", True), ("1E-400", True), ("9" * 250 + ".5", True), ("9" * 250 + "e99", True),
    ("1.7976931348623157e308", True), ("1e99", False), ("123456.75", False), ("9" * 150, False), ('"2e10"', False),
    ('"2e100"', True),  # a string may look like one: decoded whole, as before
])  # fmt: skip
def test_a_search_that_may_hold_a_number_beyond_a_double_is_decoded_whole(text: str, whole: bool) -> None:
    raw = ('{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "valueQuantity": '
           '{"value": ' + text + "}}}]}").encode()  # fmt: skip
    assert (decode_capped_search(raw) is None) is whole


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"Bundle"', b'{"resourceType": "OperationOutcome"}',
                                 b'{"resourceType": "Bundle", "entry": [1, {}]}', b'{"entry": "x"}'])  # fmt: skip
def test_anything_but_a_search_bundle_of_entries_is_decoded_whole(raw: bytes) -> None:
    assert decode_capped_search(raw) is None


def test_a_resource_that_is_not_an_object_leaves_the_other_readings_partial() -> None:
    reading = {"resourceType": "Observation", "id": "b", "status": "final", "component": [{"a": 1}]}
    raw = json.dumps({"resourceType": "Bundle", "entry": [{"resource": "Observation"}, {"resource": reading},
                                                           {"resource": [1]}, {}]}).encode()  # fmt: skip
    bundle = decode_capped_search(raw)
    assert bundle is not None
    first, second, third, fourth = bundle["entry"]
    assert first == {"resource": "Observation"} and third == {"resource": [1]} and fourth == {}
    assert isinstance(second["resource"], PartialResource) and "component" not in second["resource"]
    assert partial.complete(second["resource"]) == reading
