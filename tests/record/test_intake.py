"""Intake of raw resources: which vital signs are validated and kept, and malformed JSON never raising."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record, max_vitals_per_kind
from cds_service.record.conditions import ConditionIndex
from cds_service.record.model import PatientRecord
from cds_service.record.observations import ObservationIndex
from tests.record.record_samples import ICD, SUBJECT, bp_panel, condition, observation, request, rx_concept, weight

SERTRALINE = {"medicationCodeableConcept": rx_concept("312941", "sertraline 50 MG Oral Tablet")}


def _record(kb: Knowledge, *resources: Any) -> PatientRecord:
    return build_record(list(resources), kb, available=kinds.ALL)


def _bps(count: int) -> list[dict[str, Any]]:
    """``count`` valid BP panels, bp0 the oldest, one a day in November 2026."""
    return [bp_panel(f"bp{i}", f"2026-11-{i + 1:02d}T09:00:00Z", 120 + i, 80) for i in range(count)]


def _invalid(resource: dict[str, Any]) -> dict[str, Any]:
    return resource | {"issued": "yesterday"}  # read (the date of last resort) and not a FHIR instant


def test_cap_boundary_the_reading_just_outside_is_never_validated(kb: Knowledge) -> None:
    cap = max_vitals_per_kind(kb)
    readings = _bps(cap + 1)  # bp0 is the (cap + 1)-th newest
    readings[0] = _invalid(readings[0])
    record = _record(kb, *readings)
    assert [b.resource_id for b in record.blood_pressures] == [f"bp{i}" for i in range(cap, 0, -1)]
    assert record.skipped == ()  # outside the cap: not validated, so not reported


def test_cap_boundary_decided_by_instant_when_offsets_reverse_the_text_order(kb: Knowledge) -> None:
    cap = max_vitals_per_kind(kb)
    readings = _bps(cap + 1)
    # on the day of the cap-th newest: the text says bp0 is later, in UTC it is 10 hours earlier
    day = "2026-11-02"
    readings[1] = readings[1] | {"effectiveDateTime": f"{day}T08:00:00-12:00"}  # 20:00Z
    readings[0] = readings[0] | {"effectiveDateTime": f"{day}T09:00:00+14:00"}  # 2026-11-01T19:00Z
    record = _record(kb, *readings)
    assert [b.resource_id for b in record.blood_pressures] == [f"bp{i}" for i in range(cap, 0, -1)]
    readings[0] = readings[0] | {"effectiveDateTime": f"{day}T10:00:00-12:00"}  # 22:00Z: now the cap-th newest
    record = _record(kb, *readings)
    assert [b.resource_id for b in record.blood_pressures] == [f"bp{i}" for i in range(cap, 1, -1)] + ["bp0"]


def test_cap_boundary_a_tie_keeps_the_first_received(kb: Knowledge) -> None:
    cap = max_vitals_per_kind(kb)
    readings = _bps(cap + 1)
    readings[0] = readings[0] | {"effectiveDateTime": "2026-11-02T23:00:00+14:00"}  # the instant of bp1
    readings[1] = readings[1] | {"effectiveDateTime": "2026-11-02T09:00:00Z"}
    kept = [b.resource_id for b in _record(kb, *readings).blood_pressures]
    assert kept[-1] == "bp0" and "bp1" not in kept
    kept = [b.resource_id for b in _record(kb, readings[1], readings[0], *readings[2:]).blood_pressures]
    assert kept[-1] == "bp1" and "bp0" not in kept


def test_cap_boundary_an_invalid_reading_just_inside_lets_the_next_one_in(kb: Knowledge) -> None:
    cap = max_vitals_per_kind(kb)
    readings = _bps(cap + 1)
    readings[1] = _invalid(readings[1])  # the cap-th newest
    record = _record(kb, *readings)
    assert [b.resource_id for b in record.blood_pressures] == [f"bp{i}" for i in range(cap, 1, -1)] + ["bp0"]
    assert [s.resource_id for s in record.skipped] == ["bp1"]


def test_an_invalid_newest_reading_makes_the_next_valid_one_the_latest(kb: Knowledge) -> None:
    readings = _bps(3)
    readings[2] = _invalid(readings[2])
    record = _record(kb, *reversed(readings))  # the order received does not matter
    assert record.blood_pressures[0].resource_id == "bp1"
    assert [s.resource_id for s in record.skipped] == ["bp2"]


def test_blood_pressure_and_weight_have_a_cap_each(kb: Knowledge) -> None:
    cap = max_vitals_per_kind(kb)
    bps = _bps(cap + 5)
    weights = [weight(f"w{i}", f"2026-10-{i + 1:02d}", 70, "kg") for i in range(cap + 5)]  # older than every BP
    weights[0] = _invalid(weights[0])  # beyond the weight cap: never validated
    record = _record(kb, *weights, *bps)
    assert len(record.blood_pressures) == cap and record.blood_pressures[-1].resource_id == "bp5"
    assert len(record.weights) == cap and record.weights[-1].resource_id == "w5"
    assert record.skipped == ()


def test_undated_readings_come_last_and_ties_put_the_more_cautious_first(kb: Knowledge) -> None:
    undated = observation("undated", "85354-9", None, component=bp_panel("x", "2026-01-01", 150, 95)["component"])
    unreadable_date = bp_panel("bad-date", "2026-11-31T09:00:00Z", 150, 95)  # not a date: undated, then invalid
    first = bp_panel("tie-1", "2026-11-02T10:00:00+01:00", 121, 80)
    second = bp_panel("tie-2", "2026-11-02T09:00:00Z", 122, 80)  # the same instant
    record = _record(kb, undated, first, *_bps(1), second, unreadable_date)
    assert [b.resource_id for b in record.blood_pressures] == ["tie-2", "tie-1", "bp0", "undated"]
    assert [s.resource_id for s in record.skipped] == ["bad-date"]
    record = _record(kb, undated, second, *_bps(1), first, unreadable_date)  # whatever the order received
    assert [b.resource_id for b in record.blood_pressures] == ["tie-2", "tie-1", "bp0", "undated"]


def test_an_element_the_record_does_not_read_is_not_validated(kb: Knowledge) -> None:
    # Observation.subject is neither read nor required; MedicationRequest.subject is required by R4
    score = observation("phq", "44261-6", "2026-11-20", valueInteger=17) | {"subject": {"reference": 42}}
    order = request("r1", SERTRALINE, authored="2026-01-01") | {"subject": {"reference": 42}}
    record = _record(kb, score, order)
    assert [s.resource_id for s in record.scores] == ["phq"]
    assert [(s.resource_id, s.problem.split(".")[0]) for s in record.skipped] == [("r1", "subject")]


BROKEN_VALUES: list[Any] = [{"x": 1}, ["final"], 12, 1.5, True, None, "x"]


@pytest.mark.parametrize("value", BROKEN_VALUES)
def test_malformed_values_before_validation_never_raise(kb: Knowledge, value: Any) -> None:
    """The pre-filter reads raw JSON: whatever sits where a code, a coding or a status belongs is no crash."""
    resources = [
        observation("status", "44261-6", "2026-11-20", valueInteger=17) | {"status": value},
        observation("coding", "44261-6", "2026-11-20", valueInteger=17) | {"code": {"coding": value}},
        observation("code", "44261-6", "2026-11-20", valueInteger=17) | {"code": value},
        bp_panel("when", "2026-11-20T09:00:00Z", 150, 90) | {"effectiveDateTime": value},
        condition("cond", ICD, "F33.1") | {"code": {"coding": value, "text": "depression"}},
        condition("verification", ICD, "F33.1") | {"verificationStatus": {"coding": value}},
        request("med", {"medicationCodeableConcept": {"coding": value, "text": "sertraline"}}, authored="2026-01-01"),
        {"resourceType": value, "id": "type"},
        {"resourceType": "Observation", "id": value, "status": "final", "code": {"coding": value}},
    ]
    record = _record(kb, *resources)
    assert {s.resource_type for s in record.skipped} <= {"Observation", "Condition", "MedicationRequest"}


@pytest.mark.parametrize(
    ("when", "dated"),
    [
        ("0001-01-01T00:30:00+01:00", False),  # before year 1 in UTC: not a usable date
        ("0001-01-01T00:30:00-01:00", False),  # year 1: a "no date" placeholder (record dates are 1000-8999)
        ("9999-12-31T23:30:00-01:00", False),  # after year 9999 in UTC
        ("9999-12-31T23:30:00+01:00", False),  # year 9999: a placeholder too
        ("1000-01-01T00:30:00-01:00", True),
        ("8999-12-31T23:30:00+01:00", True),
    ],
)
def test_dates_at_the_edge_of_the_calendar_never_raise(kb: Knowledge, when: str, dated: bool) -> None:
    record = _record(kb, bp_panel("bp", when, 150, 90), observation("phq", "44261-6", when, valueInteger=17))
    # fhir.resources accepts these dates; the record reads them as UTC when it can, else as undated
    assert [b.when is not None for b in record.blood_pressures] == [dated]
    assert [s.when is not None for s in record.scores] == [dated]


def test_duplicates_are_found_per_resource_type(kb: Knowledge) -> None:
    same_id = {"id": "x1", "subject": SUBJECT}
    record = _record(
        kb,
        observation("x1", "44261-6", "2026-11-20", valueInteger=17),
        observation("x1", "44261-6", "2026-11-21", valueInteger=3),  # a conflicting copy, neither newer
        condition("x1", ICD, "F33.1") | same_id,  # another type, same id: read
    )
    assert [(s.resource_id, s.value) for s in record.scores] == [("x1", 3)]  # the more cautious reading
    assert [c.resource_id for c in record.conditions] == ["x1"]


def test_the_knowledge_indexes_are_built_once_per_knowledge_base(kb: Knowledge) -> None:
    fresh = dataclasses.replace(kb)  # a knowledge base of its own, with nothing built yet
    build_record([condition("c1", ICD, "F33.1")], fresh, available=kinds.ALL)
    conditions, observations = ConditionIndex.for_knowledge(fresh), ObservationIndex.for_knowledge(fresh)
    build_record([condition("c1", ICD, "F33.1")], fresh, available=kinds.ALL)
    assert ConditionIndex.for_knowledge(fresh) is conditions and ObservationIndex.for_knowledge(fresh) is observations
    assert conditions == ConditionIndex.of(fresh) and observations == ObservationIndex.of(fresh)
    override = dataclasses.replace(fresh, local_score_codes={"HAM-D": frozenset({("urn:oid:1.2.3", "HAMD17")})})
    assert ObservationIndex.for_knowledge(override).by_code[("urn:oid:1.2.3", "HAMD17")] == "hamd"
