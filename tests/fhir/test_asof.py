"""The as-of filter: which date counts per resource type, boundaries on either side, later end dates undone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.fhir.asof import as_of, known_from
from tests.replay.replay_support import blood_pressure, instant, ketamine_order, patient

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
AT = instant("2025-06-10T12:00:00Z")


def kept(resource: dict[str, Any], at: str = "2025-06-10T12:00:00Z") -> bool:
    return bool(as_of([resource], instant(at)))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2025-06-10T12:00:00Z", True),  # exactly at the instant: known
        ("2025-06-10T12:00:01Z", False),  # one second later: not yet
        ("2025-06-10T14:00:00+02:00", True),  # the same instant in another zone
        ("2025-06-10T14:00:01+02:00", False),
        ("2025-06-10T12:00:00", True),  # no offset: read as UTC, as the service reads it
        ("2025-06-10T12:00:01", False),
    ],
)
def test_an_observation_counts_from_its_effective_time(when: str, expected: bool) -> None:
    assert kept(blood_pressure("p", "o", when, 120, 80)) is expected


@pytest.mark.parametrize(("day", "expected"), [("2025-06-10", True), ("2025-06-11", False), ("2025-06", True),
                                               ("2025-07", False), ("2025", True), ("2026", False)])  # fmt: skip
def test_a_partial_date_counts_from_its_first_instant(day: str, expected: bool) -> None:
    assert kept(blood_pressure("p", "o", day, 120, 80)) is expected


def test_an_order_on_the_same_day_without_a_time_is_midnight() -> None:
    order_day = "2025-06-10"  # a date-only authoredOn is the start of that day
    assert kept(blood_pressure("p", "o", "2025-06-10", 120, 80), order_day + "T00:00:00Z")
    assert not kept(blood_pressure("p", "o", "2025-06-10T00:00:01Z", 120, 80), order_day + "T00:00:00Z")


def test_issued_counts_only_when_there_is_no_effective_time() -> None:
    amended = blood_pressure("p", "o", "2025-06-01T09:00:00Z", 120, 80) | {"issued": "2025-07-01T09:00:00Z"}
    assert kept(amended)  # taken before, amended after: the prescriber saw it
    no_effective = {k: v for k, v in amended.items() if k != "effectiveDateTime"}
    assert not kept(no_effective)
    assert kept(no_effective | {"issued": "2025-06-10T11:59:59Z"})


def test_an_effective_period_counts_from_its_start_else_its_end() -> None:
    base = {k: v for k, v in blood_pressure("p", "o", "x", 1, 1).items() if k != "effectiveDateTime"}
    assert kept(base | {"effectivePeriod": {"start": "2025-06-10T11:00:00Z", "end": "2025-06-10T13:00:00Z"}})
    assert not kept(base | {"effectivePeriod": {"start": "2025-06-10T12:30:00Z"}})
    assert not kept(base | {"effectivePeriod": {"end": "2025-06-10T12:30:00Z"}})


@pytest.mark.parametrize(("authored", "expected"), [("2025-06-10T12:00:00Z", True), ("2025-06-10T12:00:01Z", False)])
def test_a_medication_request_counts_from_authored_on(authored: str, expected: bool) -> None:
    assert kept(ketamine_order("p", "o", authored)) is expected


@pytest.mark.parametrize(
    ("onset", "recorded", "expected"),
    [
        ("2020-01-01", "2025-06-10T12:00:00Z", True),
        ("2020-01-01", "2025-06-10T12:00:01Z", False),  # old onset, recorded after the order: not known then
        ("2025-06-11", "2025-06-01", False),  # recorded before but starting after: had not happened
        ("2025-06-01", None, True),
        (None, None, True),  # undated: kept (history, never recency)
    ],
)
def test_a_condition_counts_from_the_later_of_onset_and_recorded_date(
    onset: str | None, recorded: str | None, expected: bool
) -> None:
    condition: dict[str, Any] = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"}}
    if onset:
        condition["onsetDateTime"] = onset
    if recorded:
        condition["recordedDate"] = recorded
    assert kept(condition) is expected


def test_a_condition_onset_period_counts_from_its_start() -> None:
    condition = {"resourceType": "Condition", "onsetPeriod": {"start": "2025-06-11", "end": "2025-06-12"}}
    assert not kept(condition)
    assert kept(condition | {"onsetPeriod": {"start": "2025-06-10"}})


@pytest.mark.parametrize(
    ("effective", "asserted", "expected"),
    [
        ("2024-01-01", "2025-06-10T12:00:00Z", True),
        ("2024-01-01", "2025-06-10T12:00:01Z", False),  # history taken after the order
        ("2025-06-11", "2025-06-01", False),
        ("2024-01-01", None, True),
    ],
)
def test_a_medication_statement_counts_from_the_later_of_effective_and_date_asserted(
    effective: str, asserted: str | None, expected: bool
) -> None:
    statement: dict[str, Any] = {"resourceType": "MedicationStatement", "status": "active",
                                 "effectivePeriod": {"start": effective}}  # fmt: skip
    if asserted:
        statement["dateAsserted"] = asserted
    assert kept(statement) is expected


@pytest.mark.parametrize(("when", "expected"), [("2025-06-10T12:00:00Z", True), ("2025-06-10T12:00:01Z", False)])
def test_an_administration_counts_from_its_effective_time(when: str, expected: bool) -> None:
    assert kept({"resourceType": "MedicationAdministration", "effectiveDateTime": when}) is expected


@pytest.mark.parametrize("rtype", ["Patient", "Medication"])
def test_patients_and_medications_are_always_kept(rtype: str) -> None:
    assert kept({"resourceType": rtype, "id": "x", "effectiveDateTime": "2099-01-01", "authoredOn": "2099-01-01"})


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"recordedDate": "2025-06-10T12:00:00Z", "onsetDateTime": "2019-01-01"}, True),
        ({"recordedDate": "2025-06-10T12:00:01Z", "onsetDateTime": "2019-01-01"}, False),  # recorded later
        ({"recordedDate": "2025-06-01", "onsetPeriod": {"start": "2025-06-11"}}, False),  # happened later
        ({"onsetString": "childhood"}, True),  # no usable date
        ({}, True),
    ],
)
def test_other_types_count_from_the_later_of_recorded_and_happened(dates: dict[str, Any], expected: bool) -> None:
    allergy = {"resourceType": "AllergyIntolerance", "id": "a", "patient": {"reference": "Patient/p"}, **dates}
    assert kept(allergy) is expected
    assert kept({"resourceType": "Procedure", "performedDateTime": "2025-06-11"}) is False


@pytest.mark.parametrize("when", [None, "", "next tuesday", "2025-13-45", 20250611])
def test_an_unusable_date_keeps_the_resource(when: object) -> None:
    observation = {"resourceType": "Observation", "status": "final", "effectiveDateTime": when}
    assert known_from(observation) is None
    assert kept(observation)


def condition(status: str, **dates: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "c",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": "2020-01-01",
        **dates,
    }


@pytest.mark.parametrize("status", ["resolved", "inactive", "remission"])
def test_a_condition_that_ended_after_the_instant_was_active_then(status: str) -> None:
    ended_later = condition(status, abatementDateTime="2025-06-10T12:00:01Z")
    (then,) = as_of([ended_later], AT)
    assert "abatementDateTime" not in then
    assert then["clinicalStatus"]["coding"][0]["code"] == "active"
    assert ended_later["abatementDateTime"] == "2025-06-10T12:00:01Z"  # the input is not changed


def test_a_condition_that_ended_at_or_before_the_instant_stays_ended() -> None:
    ended = condition("resolved", abatementDateTime="2025-06-10T12:00:00Z")
    assert as_of([ended], AT) == [ended]


def test_an_abatement_period_starting_later_is_undone() -> None:
    (then,) = as_of([condition("resolved", abatementPeriod={"start": "2025-07-01"})], AT)
    assert "abatementPeriod" not in then
    assert then["clinicalStatus"]["coding"][0]["code"] == "active"


def test_a_status_change_without_a_date_cannot_be_undone() -> None:
    resolved = condition("resolved")
    assert as_of([resolved], AT) == [resolved]


@pytest.mark.parametrize(("end", "undone"), [("2025-06-10T12:00:01Z", True), ("2025-06-10T12:00:00Z", False)])
def test_a_medication_stopped_after_the_instant_was_ongoing_then(end: str, undone: bool) -> None:
    statement = {"resourceType": "MedicationStatement", "status": "completed",
                 "effectivePeriod": {"start": "2025-01-01", "end": end}}  # fmt: skip
    before = copy.deepcopy(statement)
    (then,) = as_of([statement], AT)
    assert statement == before
    if undone:
        assert then == {**statement, "status": "active", "effectivePeriod": {"start": "2025-01-01"}}
    else:
        assert then is statement


def test_order_and_everything_else_are_kept_as_given() -> None:
    resources = [
        patient("p"),
        blood_pressure("p", "b1", "2025-06-01T09:00:00Z", 120, 80),
        blood_pressure("p", "b2", "2025-06-20T09:00:00Z", 190, 120),
        ketamine_order("p", "k1", "2025-05-01T10:00:00Z"),
        ketamine_order("p", "k2", "2025-07-01T10:00:00Z"),
    ]
    assert [r["id"] for r in as_of(resources, AT)] == ["p", "b1", "k1"]


def test_malformed_values_never_raise() -> None:
    odd: list[dict[str, Any]] = [
        {"resourceType": "Condition", "clinicalStatus": "resolved", "abatementDateTime": "2030-01-01"},
        {"resourceType": "Condition", "abatementPeriod": "soon", "onsetPeriod": 3},
        {"resourceType": "MedicationStatement", "status": ["completed"],
         "effectivePeriod": {"start": "2020-01-01", "end": "2030-01-01"}},
        {"resourceType": "MedicationStatement", "effectivePeriod": "2020"},
        {"resourceType": "Observation", "effectivePeriod": []},
    ]
    assert len(as_of(odd, AT)) == len(odd)


@pytest.mark.parametrize(("zone", "expected"), [("UTC", False), ("Europe/Berlin", True), ("America/New_York", False)])
def test_a_time_without_an_offset_is_read_in_the_deployments_zone(zone: str, expected: bool) -> None:
    from zoneinfo import ZoneInfo

    naive = blood_pressure("p", "o", "2025-06-10T13:30:00", 120, 80)  # 11:30Z in Berlin (summer), 17:30Z in New York
    assert bool(as_of([naive], AT, ZoneInfo(zone))) is expected
    assert (known_from(naive, ZoneInfo(zone)) == instant("2025-06-10T11:30:00Z")) is (zone == "Europe/Berlin")
