"""Validation within one record build reuses validated elements without changing any outcome."""

from __future__ import annotations

import copy
import json
from typing import Any

from fhir.resources.R4B.dosage import Dosage
from pydantic import BaseModel

from cds_service.record.fhirdata import content_key
from cds_service.record.model import SkippedResource
from cds_service.record.validation import _MODELS, _SHARED, Validator, validate
from tests.record.record_samples import bp_panel, dosage, request, rx_concept, statement, weight

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


def _count_validations(monkeypatch: Any, model: type[BaseModel]) -> list[int]:
    """Counts how often ``model`` validates a raw dict (fhir.resources calls model_validate for each one)."""
    calls = [0]
    original = model.model_validate.__func__  # type: ignore[attr-defined]

    def counting(cls: type[BaseModel], obj: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(cls, obj, *args, **kwargs)

    monkeypatch.setattr(model, "model_validate", classmethod(counting))
    return calls


def test_a_statement_reuses_the_dosage_and_drug_of_a_request(monkeypatch: Any) -> None:
    dosages = [dosage(2, "{tbl}"), dosage(50, "mg", frequency=2)]
    resources = [
        request("r1", SERTRALINE, authored="2024-01-01", dosages=copy.deepcopy(dosages)),
        statement("s1", copy.deepcopy(SERTRALINE), start="2024-01-01", dosages=copy.deepcopy(dosages)),
        statement("s2", copy.deepcopy(SERTRALINE), start="2024-02-01", dosages=copy.deepcopy(dosages[:1])),
    ]
    assert _shared(resources) == _fresh(resources) == [None, None, None]
    counted = _count_validations(monkeypatch, Dosage)
    _shared(resources)
    assert counted[0] == 2  # the two dosages of the request; the statements reuse them


def test_elements_reused_across_resource_types_have_the_same_model() -> None:
    by_group: dict[str, set[Any]] = {}
    for rtype, elements in _SHARED.items():
        for name, group in elements.items():
            by_group.setdefault(group, set()).add(_MODELS[rtype].model_fields[name].annotation)
    assert by_group and all(len(annotations) == 1 for annotations in by_group.values()), by_group


def test_arrays_are_reused_whole_only_when_valid_and_made_of_objects() -> None:
    scalar: Any = "twice daily"  # not a Dosage
    good = request("r1", SERTRALINE, dosages=[dosage(2, "{tbl}")])
    with_scalar = request("r2", SERTRALINE, dosages=[dosage(2, "{tbl}"), scalar])
    again = request("r3", SERTRALINE, dosages=[dosage(2, "{tbl}")])
    scalar_again = request("r4", SERTRALINE, dosages=[dosage(2, "{tbl}"), scalar])
    resources = [with_scalar, good, scalar_again, again, copy.deepcopy(with_scalar) | {"id": "r5"}]
    outcomes = _shared(resources)
    assert outcomes == _fresh(resources)
    assert [o.resource_id if o else None for o in outcomes] == ["r2", None, "r4", None, "r5"]
    assert outcomes[0] is not None and outcomes[0].problem.startswith("dosageInstruction.1")


class _NotJson(dict[str, Any]):
    """A Mapping that json.loads never makes."""


def test_content_keys_tell_json_types_apart() -> None:
    keys = [content_key({"value": v}) for v in (1, 1.0, True, "1", None, [1], {"v": 1})]
    assert None not in keys and len(set(keys)) == len(keys)
    assert content_key(json.loads('{"a": [1, {"b": "c"}]}')) == content_key({"a": [1, {"b": "c"}]})
    assert content_key({"a": 1, "b": 2}) != content_key({"b": 2, "a": 1})  # another order: a missed reuse only
    assert content_key(_NotJson(a=1)) is None  # not JSON: never reused


def test_an_element_that_cannot_be_keyed_is_validated_every_time() -> None:
    first = request("r1", {"medicationCodeableConcept": _NotJson(text="sertraline")})
    second = request("r2", {"medicationCodeableConcept": _NotJson(text=5)})
    assert _shared([first, second]) == _fresh([first, second])
    assert [o is None for o in _shared([first, second])] == [True, False]


def test_a_new_element_where_valid_ones_were_seen_keeps_the_outcome_of_a_fresh_validation() -> None:
    """Once a path has held a valid element, new content there is validated on its own first (cheaper):
    a valid one is the same instance its resource would make, an invalid one is left to its resource."""

    def order(rid: str, validity: tuple[str, str], supply: float = 30, **extra: Any) -> dict[str, Any]:
        return request(rid, SERTRALINE, validity=validity, supply=(supply, "d"), **extra)

    resources = [
        order("r1", ("2024-01-01", "2024-01-31")),
        order("r2", ("2024-02-01", "2024-02-30")),  # no such day, under a path already known
        order("r3", ("2024-03-01", "2024-03-31"), supply=-1, authoredOn="yesterday"),  # valid parts, invalid whole
        order("r4", ("2024-03-01", "2024-03-31"), supply=-1),  # reuses what r3 validated
        order("r5", ("2024-04-01", "2024-04-30"), supply=1.5),
    ]
    outcomes = _shared(resources)
    assert outcomes == _fresh(resources)
    assert [o.resource_id if o else None for o in outcomes] == [None, "r2", "r3", None, None]
    assert outcomes[1] is not None and outcomes[1].problem.startswith("dispenseRequest.validityPeriod.end:")
    assert outcomes[2] is not None and outcomes[2].problem.startswith("authoredOn:")
