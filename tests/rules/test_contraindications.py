"""Contraindications and precautions (clinical-rules.md §3): blood pressure, psychosis, misuse, substance use,
cardiovascular, hepatic, intracranial and intraocular disease. Fixed clock (``NOW``), boundary pairs."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder, Route
from cds_service.record import kinds
from cds_service.record.model import SET_ASIDE_FUTURE, Administration, DataGap, PatientRecord, SetAside
from cds_service.rules.contraindications import (
    RULES,
    blood_pressure_rule,
    cardiovascular_rule,
    hepatic_rule,
    intracranial_rule,
    ketamine_misuse_rule,
    psychosis_rule,
    substance_use_rule,
)
from cds_service.rules.findings import Check, CheckStatus, DeleteOrder, Finding, Indicator
from tests.builders.orders import order
from tests.builders.records import bp, cond, period, record
from tests.clock import NOW, days_ago

ESKETAMINE = order(Drug.ESKETAMINE, Route.INTRANASAL)


def _run(
    rec: PatientRecord, kb: Knowledge, the_order: MedicationOrder | None = None
) -> tuple[list[Finding], list[Check]]:
    findings: list[Finding] = []
    checks: list[Check] = []
    for rule in RULES:
        out = rule(rec, the_order or order(), kb, NOW)
        findings.extend(out.findings)
        checks.extend(out.checks)
    return findings, checks


def dated(cid: str, *categories: str, age: float | None, status: str | None = "active", label: str = "") -> object:
    """A condition with onset ``age`` days ago (None: undated)."""
    c = cond(cid, *categories, status=status, label=label or None)
    when = days_ago(age) if age is not None else None
    return dataclasses.replace(c, onset=when, recorded=when)


# ---------------------------------------------------------------- blood pressure


@pytest.mark.parametrize(
    ("systolic", "diastolic", "topic"),
    [
        (140, 90, None),
        (141, 91, "hypertension-elevated"),
        (141, 80, "hypertension-elevated"),
        (130, 91, "hypertension-elevated"),
        (159, 99, "hypertension-elevated"),
        (160, 100, "hypertension-uncontrolled"),
        (160, 80, "hypertension-uncontrolled"),
        (120, 100, "hypertension-uncontrolled"),
    ],
)
def test_blood_pressure_boundaries(kb, systolic, diastolic, topic):
    out = blood_pressure_rule(record(bps=[bp(systolic, diastolic)]), order(), kb, NOW)
    assert [f.topic for f in out.findings] == ([topic] if topic else [])
    (check,) = out.checks
    assert check.status is (CheckStatus.MET if topic is None else CheckStatus.NOT_MET)
    assert check.note.startswith(f"{systolic}/{diastolic} on ")
    assert kinds.BLOOD_PRESSURE in check.reads
    if topic == "hypertension-uncontrolled":
        (f,) = out.findings
        assert f.indicator is Indicator.CRITICAL
        assert f.suggestions == (DeleteOrder(),)
        assert f.facts == {"bp": f"{systolic}/{diastolic}", "date": "2026-11-21", "limit": "160/100"}
    elif topic:
        assert out.findings[0].indicator is Indicator.WARNING
        assert out.findings[0].suggestions == ()
    else:
        assert check.note.endswith("below 140/90")


def test_latest_blood_pressure_decides(kb):
    rec = record(bps=[bp(170, 105, days_ago(10)), bp(128, 82, days_ago(1))])
    out = blood_pressure_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].evidence[0].value == "BP 128/82 mmHg"


def test_an_implausible_newer_reading_never_passes_and_is_named(kb):
    implausible = dataclasses.replace(bp(300, 20, days_ago(1)), plausible=False)
    out = blood_pressure_rule(record(bps=[implausible, bp(170, 105, days_ago(5))]), order(), kb, NOW)
    assert [f.topic for f in out.findings] == ["hypertension-uncontrolled"]
    assert "300/20" in out.checks[0].note and "implausible" in out.checks[0].note
    only = blood_pressure_rule(record(bps=[implausible]), order(), kb, NOW)
    assert only.checks[0].status is not CheckStatus.MET


def test_blood_pressure_thresholds_come_from_configuration(kb):
    stricter = dataclasses.replace(kb, thresholds={**kb.thresholds, "bp.critical_systolic": 150})
    out = blood_pressure_rule(record(bps=[bp(150, 80)]), order(), stricter, NOW)
    assert out.findings[0].topic == "hypertension-uncontrolled"


@pytest.mark.parametrize(("age", "documented"), [(30, True), (31, False)])
def test_blood_pressure_lookback_boundary(kb, age, documented):
    out = blood_pressure_rule(record(bps=[bp(120, 80, days_ago(age))]), order(), kb, NOW)
    assert out.findings == ()  # v2: no card of its own; an item of the pre-dose-data-missing card
    if documented:
        assert out.missing == ()
    else:
        (item,) = out.missing
        assert (item.key, item.assessment) == ("blood-pressure", "vital-signs")
        assert "the last, BP 120/80 mmHg on" in item.line
        assert out.checks[0].status is CheckStatus.UNDOCUMENTED


@pytest.mark.parametrize(("last", "said"), [((159, 99), False), ((160, 100), True), ((120, 100), True)])
def test_the_missing_bp_line_says_when_the_last_reading_was_at_the_hold_line(kb, last, said):
    (item,) = blood_pressure_rule(record(bps=[bp(*last, days_ago(40))]), order(), kb, NOW).missing
    assert ("was at or above 160/100" in item.line) is said


def test_no_blood_pressure_at_all(kb):
    out = blood_pressure_rule(record(), ESKETAMINE, kb, NOW)
    (item,) = out.missing
    assert out.findings == () and item.line == "No blood pressure in the last 30 days"


def test_blood_pressure_unobtainable(kb):
    for rec in (
        record(available=kinds.ALL - {kinds.BLOOD_PRESSURE}),
        record(gaps=[DataGap("bloodPressure", "the EHR reported an error")]),
    ):
        out = blood_pressure_rule(rec, order(), kb, NOW)
        (item,) = out.missing
        assert out.findings == () and "could not be read completely" in item.line
        assert item.assessment == "vital-signs"


@pytest.mark.parametrize(("age", "fires"), [(29, True), (31, False), (None, False)])
def test_hypertensive_crisis_condition_expires_after_30_days(kb, age, fires):
    rec = record(
        conditions=[dated("h", "hypertensive-crisis", age=age, label="Hypertensive urgency")], bps=[bp(120, 80)]
    )
    out = blood_pressure_rule(rec, order(), kb, NOW)
    if fires:
        (f,) = out.findings
        assert (f.topic, f.variant, f.indicator) == ("hypertension-uncontrolled", "condition", Indicator.CRITICAL)
        assert out.checks[0].status is CheckStatus.NOT_MET
    else:
        assert out.findings == ()
        assert out.checks[0].status is CheckStatus.MET
        assert "Hypertensive urgency: older than 30 days or undated, not counted" in out.checks[0].note


# ---------------------------------------------------------------- psychosis, misuse, substance use


def test_psychosis_active_vs_history(kb):
    (f,) = psychosis_rule(record(conditions=[cond("s", "psychosis", label="Schizophrenia")]), order(), kb, NOW).findings
    assert (f.indicator, f.variant, f.facts["condition"]) == (Indicator.CRITICAL, "active", "Schizophrenia")
    assert f.suggestions == (DeleteOrder(),)
    for status in ("resolved", "inactive", "remission"):
        rec = record(conditions=[cond("s", "psychosis", status=status)])
        (f,) = psychosis_rule(rec, order(), kb, NOW).findings
        assert (f.indicator, f.variant) == (Indicator.WARNING, "history")
        assert f.suggestions == ()
    out = psychosis_rule(record(), order(), kb, NOW)
    assert out.findings == () and out.checks[0] == Check("Psychosis", CheckStatus.MET, "", reads=(kinds.CONDITIONS,))


def test_history_of_psychosis_in_words_is_a_warning_not_an_active_disorder(kb):
    named = dataclasses.replace(
        cond("h", "psychosis", label="History of psychosis"), history_categories=frozenset({"psychosis"})
    )
    (f,) = psychosis_rule(record(conditions=[named]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.WARNING, "history")


def test_psychotic_features_and_refuted(kb):
    (f,) = psychosis_rule(record(conditions=[cond("m", "psychotic-features")]), order(), kb, NOW).findings
    assert (f.topic, f.variant) == ("psychosis", "active")
    rec = record(conditions=[cond("s", "psychosis", verification="refuted")])
    assert psychosis_rule(rec, order(), kb, NOW).findings == ()


def test_ketamine_misuse_any_status_is_critical(kb):
    for status in ("active", "resolved", None):
        rec = record(conditions=[cond("k", "ketamine-misuse", "substance-use", status=status)])
        (f,) = ketamine_misuse_rule(rec, order(), kb, NOW).findings
        assert (f.indicator, f.variant) == (Indicator.CRITICAL, "default")
        assert substance_use_rule(rec, order(), kb, NOW).findings == ()  # not twice


def test_ketamine_uropathy_without_prescribed_ketamine_is_a_warning(kb):
    uropathy = cond("u", "ketamine-uropathy", label="Ketamine-induced ulcerative cystitis")
    (f,) = ketamine_misuse_rule(record(conditions=[uropathy]), order(), kb, NOW).findings
    assert (f.topic, f.indicator, f.variant) == ("ketamine-misuse-history", Indicator.WARNING, "uropathy")
    given = Administration("a1", days_ago(100), "ketamine")
    prescribed = record(conditions=[uropathy], administrations=(given,))
    assert ketamine_misuse_rule(prescribed, order(), kb, NOW).findings == ()
    statement = record(
        conditions=[uropathy], exposures=[period("ketamine", days_ago(200), days_ago(150), role="ketamine")]
    )
    assert ketamine_misuse_rule(statement, order(), kb, NOW).findings == ()


def test_substance_use_no_card_categories_are_a_line(kb):
    rec = record(conditions=[cond("n", "substance-use-no-card", label="Nicotine dependence, cigarettes")])
    out = substance_use_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.MET and "Nicotine dependence" in out.checks[0].note
    inactive = record(conditions=[cond("a", "substance-use", status="remission")])
    assert substance_use_rule(inactive, order(), kb, NOW).findings == ()
    (f,) = substance_use_rule(record(conditions=[cond("a", "substance-use")]), order(), kb, NOW).findings
    assert (f.topic, f.indicator) == ("substance-use-disorder", Indicator.WARNING)


# ---------------------------------------------------------------- cardiovascular (the 8-week line)


@pytest.mark.parametrize(
    ("age", "indicator", "variant"),
    [
        (42, Indicator.CRITICAL, "acute"),
        (56, Indicator.CRITICAL, "acute"),
        (57, Indicator.WARNING, "past-event"),
        (70, Indicator.WARNING, "past-event"),
        (None, Indicator.WARNING, "past-event"),
    ],
)
def test_acute_events_critical_within_8_weeks_then_a_warning(kb, age, indicator, variant):
    mi = dated("mi", "cardiovascular", age=age, label="Acute myocardial infarction")
    (f,) = cardiovascular_rule(record(conditions=[mi]), order(), kb, NOW).findings
    assert (f.topic, f.indicator, f.variant) == ("cardiovascular-disease", indicator, variant)
    assert f.suggestions == ((DeleteOrder(),) if indicator is Indicator.CRITICAL else ())


def test_acute_events_count_whatever_their_status(kb):
    resolved = dated("s", "cardiovascular", age=20, status="resolved", label="Stroke")
    (f,) = cardiovascular_rule(record(conditions=[resolved]), order(), kb, NOW).findings
    assert f.indicator is Indicator.CRITICAL
    old = dated("s", "cardiovascular", age=2000, status="resolved", label="Stroke")
    (f,) = cardiovascular_rule(record(conditions=[old]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.WARNING, "past-event")


def test_a_recently_recorded_history_of_tia_is_not_an_acute_event(kb):
    named = dataclasses.replace(
        dated("t", "cardiovascular", age=3, label="Personal history of TIA"),
        history_categories=frozenset({"cardiovascular"}),
    )
    (f,) = cardiovascular_rule(record(conditions=[named]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.WARNING, "past-event")


@pytest.mark.parametrize("status", ["active", "resolved", "inactive", None])
def test_haemorrhage_aneurysm_avm_critical_whatever_the_status(kb, status):
    ich = dated("i", "cardiovascular-history", age=4000, status=status, label="Intracerebral hemorrhage")
    (f,) = cardiovascular_rule(record(conditions=[ich]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.CRITICAL, "history")


def test_stable_disease_is_a_warning_and_resolved_heart_failure_gives_nothing(kb):
    hf = dated("hf", "cardiovascular-stable", age=300, label="Heart failure, unspecified")
    (f,) = cardiovascular_rule(record(conditions=[hf]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.WARNING, "stable")
    for status in ("inactive", "remission"):
        rec = record(conditions=[dataclasses.replace(hf, clinical_status=status)])
        assert cardiovascular_rule(rec, order(), kb, NOW).findings[0].indicator is Indicator.WARNING
    resolved = record(conditions=[dataclasses.replace(hf, clinical_status="resolved")])
    assert cardiovascular_rule(resolved, order(), kb, NOW).findings == ()


def test_one_card_the_most_severe(kb):
    rec = record(
        conditions=[
            dated("hf", "cardiovascular-stable", age=300, label="Heart failure"),
            dated("mi", "cardiovascular", age=10, label="NSTEMI"),
        ]
    )
    (f,) = cardiovascular_rule(rec, order(), kb, NOW).findings
    assert (f.indicator, f.variant, f.facts["condition"]) == (Indicator.CRITICAL, "acute", "NSTEMI")
    assert {e.resource_id for e in f.evidence} == {"hf", "mi"}


# ---------------------------------------------------------------- hepatic, intracranial


def test_hepatic_compensated_vs_decompensated(kb):
    cirrhosis = cond("c", "hepatic-cirrhosis", label="Unspecified cirrhosis of liver")
    (f,) = hepatic_rule(record(conditions=[cirrhosis]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.WARNING, "compensated")
    ascites = cond("a", "hepatic-decompensation-sign", label="Other ascites")
    (f,) = hepatic_rule(record(conditions=[cirrhosis, ascites]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.CRITICAL, "decompensated")
    assert hepatic_rule(record(conditions=[ascites]), order(), kb, NOW).findings == ()  # ascites alone: not this rule
    (f,) = hepatic_rule(
        record(conditions=[cond("e", "hepatic", label="Hepatic encephalopathy")]), order(), kb, NOW
    ).findings
    assert f.indicator is Indicator.CRITICAL
    resolved = record(conditions=[cond("c", "hepatic-cirrhosis", status="resolved")])
    assert hepatic_rule(resolved, order(), kb, NOW).findings == ()


def test_intracranial_raised_vs_benign(kb):
    (f,) = intracranial_rule(record(conditions=[cond("h", "intracranial-pressure")]), order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.CRITICAL, "default")
    (f,) = intracranial_rule(
        record(conditions=[cond("m", "intracranial-benign", label="Meningioma")]), order(), kb, NOW
    ).findings
    assert (f.indicator, f.variant) == (Indicator.WARNING, "benign")


CASES = [
    ("ketamine-misuse", "ketamine-misuse-history", Indicator.CRITICAL),
    ("substance-use", "substance-use-disorder", Indicator.WARNING),
    ("cardiovascular-history", "cardiovascular-disease", Indicator.CRITICAL),
    ("cardiovascular-stable", "cardiovascular-disease", Indicator.WARNING),
    ("hepatic", "hepatic-impairment", Indicator.CRITICAL),
    ("hepatic-cirrhosis", "hepatic-impairment", Indicator.WARNING),
    ("intracranial-pressure", "intracranial-pressure", Indicator.CRITICAL),
    ("intracranial-benign", "intracranial-pressure", Indicator.WARNING),
    ("intraocular-pressure", "intraocular-pressure", Indicator.WARNING),
]


@pytest.mark.parametrize(("category", "topic", "indicator"), CASES)
@pytest.mark.parametrize("drug", ["iv-ketamine", "esketamine"])
def test_each_condition_contraindication_present_vs_absent(kb, category, topic, indicator, drug):
    the_order = order() if drug == "iv-ketamine" else ESKETAMINE
    normal = [bp(120, 80)]
    findings, checks = _run(record(bps=normal), kb, the_order)
    assert findings == []
    assert all(c.status is CheckStatus.MET for c in checks)
    findings, checks = _run(record(conditions=[cond("x", category, label="the condition")], bps=normal), kb, the_order)
    (f,) = findings
    assert (f.topic, f.indicator) == (topic, indicator)
    assert f.evidence[0].resource_id == "x"
    assert f.suggestions == ((DeleteOrder(),) if indicator is Indicator.CRITICAL else ())
    assert [c.status for c in checks].count(CheckStatus.NOT_MET) == 1


@pytest.mark.parametrize(("category", "topic", "indicator"), CASES)
def test_resolved_conditions_do_not_fire_except_those_any_status(kb, category, topic, indicator):
    findings, _ = _run(record(conditions=[cond("x", category, status="resolved")], bps=[bp(120, 80)]), kb)
    if category in ("ketamine-misuse", "cardiovascular-history"):
        assert [f.topic for f in findings] == [topic]
    else:
        assert findings == []


def test_conditions_unobtainable_marks_checks_undocumented(kb):
    _, checks = _run(record(depressed=False, available=kinds.ALL - {kinds.CONDITIONS}, bps=[bp(120, 80)]), kb)
    statuses = {c.criterion: c.status for c in checks}
    assert statuses["Psychosis"] is CheckStatus.UNDOCUMENTED
    assert statuses["Liver disease"] is CheckStatus.UNDOCUMENTED
    assert statuses["Blood pressure"] is CheckStatus.MET


def test_long_condition_names_are_composed_never_cut(kb):
    long = cond("x", "hepatic", label="Alcoholic cirrhosis of liver with ascites and hepatic encephalopathy, severe")
    (f,) = hepatic_rule(record(conditions=[long]), order(), kb, NOW).findings
    assert f.facts["condition"] == "decompensated liver disease"  # even the part before the comma is too long
    clause = cond("y", "hepatic", label="Hepatic encephalopathy, grade 2 (West Haven), recurrent after TIPS insertion")
    (f,) = hepatic_rule(record(conditions=[clause]), order(), kb, NOW).findings
    assert f.facts["condition"] == "Hepatic encephalopathy"
    two = record(
        conditions=[
            cond("a", "hepatic", label="Hepatorenal syndrome"),
            cond("b", "hepatic", label="Portal hypertension"),
        ]
    )
    (f,) = hepatic_rule(two, order(), kb, NOW).findings
    assert f.facts["condition"] == "Hepatorenal syndrome, Portal hypertension"


def test_a_condition_recognised_by_its_words_says_so_on_the_card(kb):
    named = dataclasses.replace(
        cond("s", "psychosis", label="Schizophrenia (local)"), named_categories=frozenset({"psychosis"})
    )
    (f,) = psychosis_rule(record(conditions=[named]), order(), kb, NOW).findings
    assert f.evidence[0].value.endswith("recognised by name")
    (coded,) = psychosis_rule(record(conditions=[cond("s", "psychosis")]), order(), kb, NOW).findings
    assert "recognised by name" not in coded.evidence[0].value


def _future(systolic: float, diastolic: float, plausible: bool = True) -> SetAside:
    reading = dataclasses.replace(bp(systolic, diastolic, NOW + timedelta(days=3)), plausible=plausible)
    return SetAside(kinds.BLOOD_PRESSURE, SET_ASIDE_FUTURE, 1, (f"BP {systolic}/{diastolic} mmHg",), (reading,))


@pytest.mark.parametrize(("systolic", "diastolic", "warns"), [(190, 120, True), (141, 80, True), (140, 90, False)])
def test_a_high_reading_dated_in_the_future_warns(kb, systolic, diastolic, warns):
    rec = record(bps=[bp(120, 80)], set_aside=(_future(systolic, diastolic),))
    out = blood_pressure_rule(rec, order(), kb, NOW)
    assert [(f.topic, f.variant) for f in out.findings] == ([("hypertension-elevated", "future")] if warns else [])
    assert ("dated in the future" in out.checks[0].note or "is in the future" in out.checks[0].note) is warns


def test_a_future_reading_is_only_a_line_beside_a_current_card_and_never_when_implausible(kb):
    rec = record(bps=[bp(170, 100)], set_aside=(_future(190, 120),))
    out = blood_pressure_rule(rec, order(), kb, NOW)
    assert [f.topic for f in out.findings] == ["hypertension-uncontrolled"]
    assert "is in the future: verify" in out.checks[0].note
    implausible = record(bps=[bp(120, 80)], set_aside=(_future(400, 120, plausible=False),))
    assert blood_pressure_rule(implausible, order(), kb, NOW).findings == ()
