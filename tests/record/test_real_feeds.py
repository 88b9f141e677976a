"""Records shaped like real EHR and device feeds (clinical-rules.md §10): each deviation is read safely and said
(``record.normalised``), or set aside and counted (``record.set_aside``); none makes a safety signal vanish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds_service.knowledge.loader import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record, max_vitals_per_kind
from cds_service.record.model import (
    NORMALISED_BP_DECIMALS,
    NORMALISED_BP_TEXT,
    NORMALISED_CONFLICTING_COPIES,
    NORMALISED_LONE_OBJECT,
    SET_ASIDE_CONFLICT,
    SET_ASIDE_FUTURE,
    SET_ASIDE_OTHER_PATIENT,
    SET_ASIDE_UNREADABLE,
    BloodPressure,
    Normalisation,
    PatientRecord,
    SetAside,
)
from tests.clock import NOW
from tests.record.record_samples import ICD, LNC, SUBJECT, UCUM, bp_panel, condition, mmhg, observation, patient, weight

NO_OFFSET_UTC = "times without a time-zone offset read as UTC time"


def _record(kb: Knowledge, *resources: Any, **context: Any) -> PatientRecord:
    context.setdefault("patient_id", "p1")
    context.setdefault("now", NOW)
    return build_record(list(resources), kb, available=kinds.ALL, **context)


def _bp(record: PatientRecord) -> list[tuple[float | None, float | None]]:
    return [(b.systolic, b.diastolic) for b in record.blood_pressures]


def _aside(record: PatientRecord, kind: str, reason: str) -> SetAside:
    (found,) = [s for s in record.set_aside_of(kind) if s.reason == reason]
    return found


# --- dateTime with a time and no offset ---------------------------------------------------------------


def test_the_newest_bp_without_an_offset_is_read_and_said_not_dropped(kb: Knowledge) -> None:
    record = _record(
        kb, bp_panel("old", "2026-11-01T09:00:00Z", 124, 78), bp_panel("new", "2026-11-22T10:00:00", 172, 96)
    )
    assert _bp(record) == [(172, 96), (124, 78)]
    assert record.blood_pressures[0].when == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert record.skipped == () and record.set_aside == ()
    assert record.normalised == (Normalisation(kinds.BLOOD_PRESSURE, NO_OFFSET_UTC, 1),)


def test_a_time_without_an_offset_is_read_in_the_configured_zone(kb: Knowledge) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    record = _record(kb, bp_panel("new", "2026-11-22T10:00:00", 172, 96), zone=berlin)
    assert record.blood_pressures[0].when == datetime(2026, 11, 22, 9, tzinfo=UTC)  # CET is UTC+1 in November
    assert record.normalised == (
        Normalisation(kinds.BLOOD_PRESSURE, "times without a time-zone offset read as Europe/Berlin time", 1),
    )


def test_only_offsetless_readings_are_all_read(kb: Knowledge) -> None:
    record = _record(kb, *(bp_panel(f"b{i}", f"2026-11-2{i}T08:30", 130 + i, 80) for i in range(3)), patient())
    assert _bp(record) == [(132, 80), (131, 80), (130, 80)]  # minutes without seconds too
    assert record.normalised == (Normalisation(kinds.BLOOD_PRESSURE, NO_OFFSET_UTC, 3),)


def test_offsetless_dates_elsewhere_are_repaired_at_validation(kb: Knowledge) -> None:
    psychosis = condition("c1", ICD, "F20.0", "Paranoid schizophrenia", onsetDateTime="2026-10-01T10:00:00")
    record = _record(kb, psychosis)
    assert [c.resource_id for c in record.conditions] == ["c1"]
    assert record.conditions[0].onset == datetime(2026, 10, 1, 10, tzinfo=UTC)
    assert record.normalised == (Normalisation(kinds.CONDITIONS, NO_OFFSET_UTC, 1),)


def test_a_date_that_is_not_a_date_is_still_rejected_and_set_aside(kb: Knowledge) -> None:
    record = _record(
        kb, bp_panel("bad", "2026-11-31T09:00:00", 190, 120), bp_panel("ok", "2026-11-20T09:00:00Z", 120, 80)
    )
    assert _bp(record) == [(120, 80)]
    aside = _aside(record, kinds.BLOOD_PRESSURE, SET_ASIDE_UNREADABLE)
    assert aside.count == 1 and aside.details[0].startswith("a blood pressure record: effectiveDateTime")


# --- another patient's resources -------------------------------------------------------------------------


OTHER = {"reference": "Patient/someone-else"}


def test_another_patients_resources_are_never_used_and_are_counted_without_their_values(kb: Knowledge) -> None:
    record = _record(
        kb,
        patient(),
        patient(id="someone-else", birthDate="2010-01-01"),
        condition("c-other", ICD, "F20.0", "Paranoid schizophrenia") | {"subject": OTHER},
        bp_panel("bp-other", "2026-11-22T09:00:00Z", 190, 120) | {"subject": OTHER},
        bp_panel("bp-mine", "2026-11-20T09:00:00Z", 124, 78),
    )
    assert record.conditions == () and _bp(record) == [(124, 78)]
    assert record.patient.birth_date is not None and record.patient.birth_date.year == 1958
    assert record.set_aside == (
        SetAside(kinds.BLOOD_PRESSURE, SET_ASIDE_OTHER_PATIENT, 1),
        SetAside(kinds.CONDITIONS, SET_ASIDE_OTHER_PATIENT, 1),
        SetAside(kinds.PATIENT, SET_ASIDE_OTHER_PATIENT, 1),
    )


@pytest.mark.parametrize(
    ("subject", "used"),
    [
        ({"reference": "Patient/p1"}, True),
        ({"reference": "https://fhir.example.org/r4/Patient/p1"}, True),
        ({"reference": "Patient/p1/_history/3"}, True),
        ({"reference": "urn:uuid:0b5c1f0e-3c2a-4d4e-9f3f-1c1d9a1b2c3d"}, True),  # only the sender can resolve it
        ({"display": "Jane Doe"}, True),
        ({"identifier": {"value": "MRN-1"}}, True),
        ({"reference": "Patient/p10"}, False),
        ({"reference": "https://fhir.example.org/r4/Patient/p2/_history/1"}, False),
        ({"reference": "Group/ward-3"}, False),
    ],
)
def test_the_subject_decides(kb: Knowledge, subject: dict[str, Any], used: bool) -> None:
    record = _record(kb, condition("c1", ICD, "F20.0", "Paranoid schizophrenia") | {"subject": subject})
    assert (len(record.conditions) == 1) is used
    assert (record.set_aside_of(kinds.CONDITIONS) == ()) is used


def test_without_a_context_patient_nothing_is_set_aside(kb: Knowledge) -> None:
    record = _record(kb, condition("c1", ICD, "F20.0") | {"subject": OTHER}, patient_id=None)
    assert [c.resource_id for c in record.conditions] == ["c1"] and record.set_aside == ()


# --- duplicates ---------------------------------------------------------------------------------------


def test_identical_copies_are_one_and_say_nothing(kb: Knowledge) -> None:
    reading = bp_panel("bp-dup", "2026-11-20T09:00:00Z", 150, 95)
    record = _record(kb, reading, dict(reading) | {"meta": {"versionId": "7"}})
    assert _bp(record) == [(150, 95)] and record.set_aside == () and record.normalised == ()


@pytest.mark.parametrize(
    ("meta_high", "meta_low"),
    [
        ({"versionId": "10"}, {"versionId": "9"}),  # numbers, not text: "10" > "9"
        ({"lastUpdated": "2026-11-21T10:00:00Z"}, {"lastUpdated": "2026-11-21T09:00:00Z"}),
        ({"lastUpdated": "2026-11-21T10:00:00+01:00"}, {"lastUpdated": "2026-11-21T08:59:59Z"}),
    ],
)
def test_the_newer_version_is_used_whatever_the_order(kb: Knowledge, meta_high: Any, meta_low: Any) -> None:
    newer = bp_panel("bp-dup", "2026-11-20T09:00:00Z", 122, 76) | {"meta": meta_high}
    older = bp_panel("bp-dup", "2026-11-20T09:00:00Z", 182, 112) | {"meta": meta_low}
    for order in ((newer, older), (older, newer)):
        record = _record(kb, *order)
        assert _bp(record) == [(122, 76)] and record.set_aside == ()


def test_conflicting_copies_resolve_to_the_cautious_reading_and_say_so(kb: Knowledge) -> None:
    high = bp_panel("bp-dup", "2026-11-22T09:00:00Z", 182, 112)
    low = bp_panel("bp-dup", "2026-11-22T09:00:00Z", 122, 76)
    for order in ((high, low), (low, high)):
        record = _record(kb, *order)
        assert _bp(record) == [(182, 112)]
        aside = _aside(record, kinds.BLOOD_PRESSURE, SET_ASIDE_CONFLICT)
        assert (aside.count, aside.details) == (1, ("BP 122/76 mmHg dated 2026-11-22",))
        assert [(b.systolic, b.diastolic) for b in aside.readings if isinstance(b, BloodPressure)] == [(122, 76)]


@pytest.mark.parametrize(
    ("make", "values", "kept"),
    [
        (lambda rid, v: weight(rid, "2026-11-20", v, "kg"), (80, 72), 72),  # the lower weight: the higher mg/kg
        (lambda rid, v: weight(rid, "2026-11-20", v, "kg"), (400, 72), 400),  # implausible passes no check
        (lambda rid, v: observation(rid, "44261-6", "2026-11-20", valueInteger=v), (18, 9), 9),
    ],
)
def test_cautious_reading_per_kind(kb: Knowledge, make: Any, values: tuple[float, float], kept: float) -> None:
    for order in (values, values[::-1]):
        record = _record(kb, *(make("dup", v) for v in order))
        found = [w.kg for w in record.weights] or [s.value for s in record.scores]
        assert found == [kept]


def test_conflicting_copies_of_a_condition_are_both_read(kb: Knowledge) -> None:
    active = condition("c-dup", ICD, "F20.0", "Paranoid schizophrenia")
    resolved = condition("c-dup", ICD, "F20.0", "Paranoid schizophrenia", clinical="resolved")
    record = _record(kb, resolved, active)
    assert sorted(c.clinical_status or "" for c in record.conditions) == ["active", "resolved"]
    assert record.normalised == (Normalisation(kinds.CONDITIONS, NORMALISED_CONFLICTING_COPIES, 1),)


# --- readings dated in the future -----------------------------------------------------------------------


def test_future_readings_are_set_aside_before_the_cap_with_their_values(kb: Knowledge) -> None:
    cap = max_vitals_per_kind(kb)
    future = [bp_panel(f"f{i}", f"2026-12-{i + 1:02d}T09:00:00Z", 190, 120) for i in range(cap)]
    yesterday = bp_panel("yesterday", "2026-11-22T09:00:00Z", 171, 104)
    record = _record(kb, *future, yesterday)
    assert _bp(record) == [(171, 104)]
    aside = _aside(record, kinds.BLOOD_PRESSURE, SET_ASIDE_FUTURE)
    assert aside.count == cap and aside.details[0] == "BP 190/120 mmHg dated 2026-12-01"
    assert len(aside.readings) == cap and all(isinstance(r, BloodPressure) for r in aside.readings)


@pytest.mark.parametrize(
    ("after_now", "set_aside"), [(timedelta(hours=24), False), (timedelta(hours=24, seconds=1), True)]
)
def test_the_future_boundary_is_24_hours_after_now(kb: Knowledge, after_now: timedelta, set_aside: bool) -> None:
    when = (NOW + after_now).isoformat()
    record = _record(kb, bp_panel("bp", when, 150, 95), observation("phq", "44261-6", when, valueInteger=20))
    assert (record.blood_pressures == ()) is set_aside and (record.scores == ()) is set_aside
    assert len(record.set_aside_of(kinds.BLOOD_PRESSURE, kinds.SCORES)) == (2 if set_aside else 0)


def test_the_future_tolerance_is_configurable(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("thresholds:\n  records.future_tolerance_hours: 1\n")
    record = _record(load_knowledge(str(config)), bp_panel("bp", (NOW + timedelta(hours=2)).isoformat(), 150, 95))
    assert record.blood_pressures == () and record.set_aside[0].reason == SET_ASIDE_FUTURE


# --- blood pressure as text, in decimals, implausible -----------------------------------------------------


def _bp_text(rid: str, text: str) -> dict[str, Any]:
    return observation(rid, "85354-9", "2026-11-20T09:00:00Z", valueString=text)


@pytest.mark.parametrize("text", ["160/100", "160/100 mmHg", " 160 / 100 mm[Hg] "])
def test_a_blood_pressure_sent_as_text_is_read_and_said(kb: Knowledge, text: str) -> None:
    record = _record(kb, _bp_text("t", text))
    assert _bp(record) == [(160, 100)]
    assert record.normalised == (Normalisation(kinds.BLOOD_PRESSURE, NORMALISED_BP_TEXT, 1),)


def test_a_blood_pressure_text_that_cannot_be_read_is_set_aside_not_dropped(kb: Knowledge) -> None:
    record = _record(kb, _bp_text("t", "see nursing notes"))
    assert record.blood_pressures == ()
    assert _aside(record, kinds.BLOOD_PRESSURE, SET_ASIDE_UNREADABLE).details == (
        "a blood pressure record dated 2026-11-20",
    )


@pytest.mark.parametrize(
    ("systolic", "diastolic", "shown"),
    [(167.676, 89.3788, (168, 89)), (140.5, 90.5, (141, 91)), (140.49, 90.2965, (140, 90))],
)
def test_decimal_blood_pressure_is_rounded_half_up(
    kb: Knowledge, systolic: float, diastolic: float, shown: Any
) -> None:
    record = _record(kb, bp_panel("d", "2026-11-20T09:00:00Z", systolic, diastolic))
    assert _bp(record) == [shown]
    assert record.normalised == (Normalisation(kinds.BLOOD_PRESSURE, NORMALISED_BP_DECIMALS, 2),)
    assert record.blood_pressures[0].evidence().value == f"BP {shown[0]}/{shown[1]} mmHg"


@pytest.mark.parametrize(
    ("systolic", "diastolic", "plausible"),
    [(49, 80, False), (50, 80, True), (300, 80, True), (301, 80, False),
     (120, 19, False), (120, 20, True), (250, 200, True), (250, 201, False)],
)  # fmt: skip
def test_implausible_blood_pressure_is_flagged(kb: Knowledge, systolic: int, diastolic: int, plausible: bool) -> None:
    (reading,) = _record(kb, bp_panel("b", "2026-11-20T09:00:00Z", systolic, diastolic)).blood_pressures
    assert reading.plausible is plausible
    assert reading.evidence().value.endswith("(implausible)") is not plausible


@pytest.mark.parametrize(("kg", "plausible"), [(29.9, False), (30, True), (300, True), (300.1, False)])
def test_implausible_weight_is_flagged(kb: Knowledge, kg: float, plausible: bool) -> None:
    (reading,) = _record(kb, weight("w", "2026-11-20", kg, "kg")).weights
    assert reading.plausible is plausible


def test_plausible_ranges_are_configurable(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("thresholds:\n  weight.plausible_min_kg: 40\n  bp.plausible_systolic_max: 250\n")
    record = _record(
        load_knowledge(str(config)), weight("w", "2026-11-20", 35, "kg"), bp_panel("b", "2026-11-20T09:00:00Z", 260, 90)
    )
    assert [w.plausible for w in record.weights] == [False] and [b.plausible for b in record.blood_pressures] == [False]


def test_a_separate_implausible_systolic_is_flagged_on_its_pair(kb: Knowledge) -> None:
    record = _record(
        kb,
        observation("s", "8480-6", "2026-11-20T09:00:00Z", valueQuantity=mmhg(400)),
        observation("d", "8462-4", "2026-11-20T09:01:00Z", valueQuantity=mmhg(80)),
    )
    assert [(b.systolic, b.diastolic, b.plausible) for b in record.blood_pressures] == [(400, 80, False)]


# --- a lone object where FHIR has a list ----------------------------------------------------------------


def test_a_lone_object_where_a_list_belongs_is_read_and_said(kb: Knowledge) -> None:
    reading = bp_panel("b", "2026-11-20T09:00:00Z", 162, 101)
    reading["category"] = reading["category"][0]  # not read, so not validated: nothing to say
    reading["code"] = {"coding": reading["code"]["coding"][0]}
    record = _record(kb, reading)
    assert _bp(record) == [(162, 101)]
    assert record.normalised == (Normalisation(kinds.BLOOD_PRESSURE, NORMALISED_LONE_OBJECT, 1),)


def test_a_lone_component_is_read(kb: Knowledge) -> None:
    systolic_only = observation(
        "b", "85354-9", "2026-11-20T09:00:00Z",
        component={"code": {"coding": [{"system": LNC, "code": "8480-6"}]}, "valueQuantity": mmhg(165)},
    )  # fmt: skip
    record = _record(kb, systolic_only)
    assert _bp(record) == [(165, None)]
    assert record.normalised == (Normalisation(kinds.BLOOD_PRESSURE, NORMALISED_LONE_OBJECT, 1),)


# --- quantitative hCG -------------------------------------------------------------------------------------


def _hcg(value: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    res = observation("h", "19080-1", "2026-11-20T09:00:00Z", **extra)
    if value is not None:
        res["valueQuantity"] = value
    return res


@pytest.mark.parametrize(
    ("unit", "iu_per_l"),
    [("mIU/mL", 2400), ("m[IU]/mL", 2400), ("[IU]/L", 2400), ("IU/L", 2400), ("U/L", 2400), ("miu/ml", 2400),
     ("[IU]/mL", 2_400_000), ("IU/mL", 2_400_000)],
)  # fmt: skip
def test_quantitative_hcg_is_read_in_iu_per_litre(kb: Knowledge, unit: str, iu_per_l: float) -> None:
    (test,) = _record(kb, _hcg({"value": 2400, "unit": unit, "system": UCUM, "code": unit})).pregnancy_tests
    assert (test.iu_per_l, test.comparator, test.unit_unreadable, test.positive) == (iu_per_l, None, False, None)
    assert test.value_as_sent == 2400


def test_quantitative_hcg_comparator_text_and_unreadable_units(kb: Knowledge) -> None:
    below = _record(kb, _hcg({"value": 5, "comparator": "<", "unit": "mIU/mL"})).pregnancy_tests[0]
    assert (below.iu_per_l, below.comparator) == (5, "<")
    assert below.evidence().value == "hCG <5 IU/L"
    as_text = _record(kb, _hcg(valueString="<5 mIU/mL")).pregnancy_tests[0]
    assert (as_text.iu_per_l, as_text.comparator, as_text.unit_unreadable) == (5, "<", False)
    for value in ({"value": 30, "unit": "ng/mL"}, {"value": 30}):
        odd = _record(kb, _hcg(value)).pregnancy_tests[0]
        assert (odd.iu_per_l, odd.value_as_sent, odd.unit_unreadable) == (None, 30, True)
        assert odd.evidence().value == "hCG result not readable (30 in a unit not read)"
    interpreted = _hcg(
        {"value": 2400, "unit": "mIU/mL"},
        interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                     "code": "POS"}]}],
    )  # fmt: skip
    test = _record(kb, interpreted).pregnancy_tests[0]
    assert (test.positive, test.iu_per_l) == (True, 2400)


# --- MADRS and HAM-D recognised by name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "total"),
    [
        ("MADRS item 1 - apparent sadness", False),
        ("MADRS - apparent sadness score", False),
        ("MADRS", False),
        ("Montgomery-Asberg Depression Rating Scale", False),
        ("MADRS total", True),
        ("MADRS total score", True),
        ("Montgomery-Åsberg Depression Rating Scale score", True),
        ("HAM-D score", True),
        ("HAM-D item 3 suicide score", False),
        ("Hamilton Depression Rating Scale total (17 items)", False),  # names items: not trusted as a total
    ],
)
def test_a_rating_scale_named_only_counts_as_a_total_when_the_name_says_so(
    kb: Knowledge, name: str, total: bool
) -> None:
    named = {"resourceType": "Observation", "id": "s", "status": "final", "subject": SUBJECT,
             "code": {"text": name}, "effectiveDateTime": "2026-11-20", "valueInteger": 3}  # fmt: skip
    record = _record(kb, named)
    assert (len(record.scores) == 1) is total
