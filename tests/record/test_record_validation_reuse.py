"""Validation within one record build reuses validated elements without changing any outcome."""

from __future__ import annotations

import copy
from typing import Any

from record_samples import bp_panel, dosage, request, rx_concept, weight

from cds_service.record.model import SkippedResource
from cds_service.record.validation import Validator, validate

SERTRALINE = {"medicationCodeableConcept": rx_concept("312941", "sertraline 50 MG Oral Tablet")}


def _fresh(resources: list[dict[str, Any]]) -> list[SkippedResource | None]:
    return [validate(r) for r in resources]  # a new validator for each resource: nothing reused


def _shared(resources: list[dict[str, Any]]) -> list[SkippedResource | None]:
    validator = Validator()
    return [validator.validate(r) for r in resources]


def _requests() -> list[dict[str, Any]]:
    good = request("r1", SERTRALINE, authored="2024-01-01", supply=(30, "d"), dosages=[dosage(2, "{tbl}")])
    bad_date = copy.deepcopy(good) | {"id": "r2", "authoredOn": "2024-02-30"}
    bad_second_dosage = copy.deepcopy(good) | {"id": "r3"}
    bad_second_dosage["dosageInstruction"].append({"timing": {"repeat": {"frequency": "daily"}}})
    bad_nested = copy.deepcopy(good) | {"id": "r4"}
    bad_nested["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = "two"
    no_subject = copy.deepcopy(good) | {"id": "r5"}
    del no_subject["subject"]
    return [good, bad_date, bad_second_dosage, bad_nested, no_subject, copy.deepcopy(good) | {"id": "r6"}]


def test_reused_elements_give_the_outcomes_of_a_fresh_validation() -> None:
    resources = _requests()
    outcomes = _shared(resources)
    assert outcomes == _fresh(resources)
    assert [o is None for o in outcomes] == [True, False, False, False, False, True]
    # the invalid element is named where it sits, after a reused (valid) sibling
    assert outcomes[2] is not None and outcomes[2].problem.startswith("dosageInstruction.1.")
    assert outcomes[3] is not None and outcomes[3].problem.startswith("dosageInstruction.0.doseAndRate.0.")


def test_an_element_seen_only_in_an_invalid_resource_is_validated_again() -> None:
    bad = request("bad", SERTRALINE, authored="2024-02-30", dosages=[{"timing": {"repeat": {"frequency": "x"}}}])
    again = copy.deepcopy(bad) | {"id": "again", "authoredOn": "2024-01-01"}
    outcomes = _shared([bad, again])
    assert [o.resource_id if o else None for o in outcomes] == ["bad", "again"]
    assert outcomes[1] is not None and outcomes[1].problem.startswith("dosageInstruction.0.timing")


def test_observations_with_shared_codes_and_components() -> None:
    resources = [
        bp_panel("b1", "2026-11-01T08:00:00Z", 150, 90),
        bp_panel("b2", "2026-11-02T08:00:00Z", 150, 90),
        bp_panel("b3", "2026-11-03T08:00:00Z", 150, 90) | {"effectiveDateTime": "yesterday"},
        weight("w1", "2026-11-01", 70, "kg"),
        weight("w2", "2026-11-02", 70, "kg") | {"valueQuantity": {"value": [70]}},
    ]
    outcomes = _shared(resources)
    assert outcomes == _fresh(resources)
    assert [o.resource_id for o in outcomes if o] == ["b3", "w2"]


def test_the_same_text_under_a_different_element_is_not_reused() -> None:
    # {"text": ...} is a valid CodeableConcept but not a valid Reference: the path is part of the key
    concept = {"medicationCodeableConcept": {"text": "sertraline"}}
    first = request("r1", concept)
    second = request("r2", concept) | {"subject": {"text": "sertraline"}}
    outcomes = _shared([first, second])
    assert outcomes == _fresh([first, second])
    assert outcomes[0] is None and outcomes[1] is not None and outcomes[1].problem.startswith("subject.text")


def test_an_array_item_is_not_reused_for_a_lone_object() -> None:
    first = request("r1", SERTRALINE, dosages=[dosage(2, "{tbl}")])
    lone = request("r2", SERTRALINE) | {"dosageInstruction": dosage(2, "{tbl}")}  # an object where an array belongs
    outcomes = _shared([first, lone])
    assert outcomes == _fresh([first, lone])
