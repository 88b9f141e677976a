"""Contraindications and precautions (clinical-rules.md §3)."""

from __future__ import annotations

import dataclasses

import pytest
from rules1_build import NOW, bp, cond, days_ago, hcg, order, record

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder, Route
from cds_service.record import kinds
from cds_service.record.model import DataGap, PatientRecord
from cds_service.rules.contraindications import RULES, blood_pressure_rule, pregnancy_rule, psychosis_rule
from cds_service.rules.findings import Check, CheckStatus, DeleteOrder, Finding, Indicator

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
    if topic == "hypertension-uncontrolled":
        (f,) = out.findings
        assert f.indicator is Indicator.CRITICAL
        assert f.suggestions == (DeleteOrder(),)
        assert f.facts == {"bp": f"{systolic}/{diastolic}", "date": "2026-11-21", "limit": "160/100"}
    elif topic:
        assert out.findings[0].indicator is Indicator.WARNING
        assert out.findings[0].suggestions == ()


def test_latest_blood_pressure_decides(kb):
    rec = record(bps=[bp(170, 105, days_ago(10)), bp(128, 82, days_ago(1))])
    out = blood_pressure_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].evidence[0].value == "BP 128/82 mmHg"


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


def test_hypertensive_crisis_condition_is_uncontrolled(kb):
    rec = record(conditions=[cond("h", "hypertensive-crisis")], bps=[bp(120, 80)])
    out = blood_pressure_rule(rec, order(), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.variant, f.indicator) == ("hypertension-uncontrolled", "condition", Indicator.CRITICAL)
    assert out.checks[0].status is CheckStatus.NOT_MET
    resolved = record(conditions=[cond("h", "hypertensive-crisis", status="resolved")], bps=[bp(120, 80)])
    assert blood_pressure_rule(resolved, order(), kb, NOW).findings == ()


def test_psychosis_active_vs_resolved(kb):
    (f,) = psychosis_rule(record(conditions=[cond("s", "psychosis", label="Schizophrenia")]), order(), kb, NOW).findings
    assert (f.indicator, f.variant, f.facts["condition"]) == (Indicator.CRITICAL, "active", "Schizophrenia")
    assert f.suggestions == (DeleteOrder(),)
    for status in ("resolved", "inactive", "remission"):
        rec = record(conditions=[cond("s", "psychosis", status=status)])
        (f,) = psychosis_rule(rec, order(), kb, NOW).findings
        assert (f.indicator, f.variant) == (Indicator.WARNING, "history")
        assert f.suggestions == ()
    assert psychosis_rule(record(), order(), kb, NOW).findings == ()


def test_psychotic_features_count_as_psychosis(kb):
    (f,) = psychosis_rule(record(conditions=[cond("m", "psychotic-features")]), order(), kb, NOW).findings
    assert (f.topic, f.variant) == ("psychosis", "active")


def test_refuted_psychosis_is_ignored(kb):
    rec = record(conditions=[cond("s", "psychosis", verification="refuted")])
    assert psychosis_rule(rec, order(), kb, NOW).findings == ()


CASES = [
    ("ketamine-misuse", "ketamine-misuse-history", Indicator.CRITICAL),
    ("substance-use", "substance-use-disorder", Indicator.WARNING),
    ("cardiovascular", "cardiovascular-disease", Indicator.CRITICAL),
    ("hepatic", "hepatic-impairment", Indicator.CRITICAL),
    ("intracranial-pressure", "intracranial-pressure", Indicator.CRITICAL),
    ("intraocular-pressure", "intraocular-pressure", Indicator.WARNING),
    ("pregnancy", "pregnancy", Indicator.CRITICAL),
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
def test_resolved_conditions_do_not_fire_except_ketamine_misuse(kb, category, topic, indicator):
    findings, _ = _run(record(conditions=[cond("x", category, status="resolved")], bps=[bp(120, 80)]), kb)
    if category == "ketamine-misuse":
        assert [f.topic for f in findings] == [topic]
    else:
        assert findings == []


def test_ketamine_misuse_not_repeated_as_substance_use(kb):
    both = cond("k", "ketamine-misuse", "substance-use")
    findings, _ = _run(record(conditions=[both], bps=[bp(120, 80)]), kb)
    assert [f.topic for f in findings] == ["ketamine-misuse-history"]


@pytest.mark.parametrize(("age", "fires"), [(30, True), (31, False)])
def test_positive_hcg_within_window(kb, age, fires):
    out = pregnancy_rule(record(tests=[hcg(True, days_ago(age))]), order(), kb, NOW)
    if fires:
        (f,) = out.findings
        assert (f.topic, f.variant, f.indicator) == ("pregnancy", "test", Indicator.CRITICAL)
        assert f.facts["test_date"] == days_ago(age).date().isoformat()
    else:
        assert out.findings == ()


def test_negative_hcg_after_positive_clears(kb):
    rec = record(tests=[hcg(True, days_ago(20)), hcg(False, days_ago(2))])
    out = pregnancy_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    assert "negative hCG" in out.checks[0].note


def test_pregnancy_tests_unobtainable_is_said(kb):
    out = pregnancy_rule(record(available=kinds.ALL - {kinds.PREGNANCY_TESTS}), order(), kb, NOW)
    assert out.findings == ()
    assert "could not be obtained" in out.checks[0].note


def test_conditions_unobtainable_marks_checks_undocumented(kb):
    _, checks = _run(record(depressed=False, available=kinds.ALL - {kinds.CONDITIONS}, bps=[bp(120, 80)]), kb)
    statuses = {c.criterion: c.status for c in checks}
    assert statuses["Psychosis"] is CheckStatus.UNDOCUMENTED
    assert statuses["Pregnancy"] is CheckStatus.UNDOCUMENTED
    assert statuses["Blood pressure"] is CheckStatus.MET


def test_long_condition_names_are_cut_for_the_summary(kb):
    long = cond("x", "hepatic", label="Alcoholic cirrhosis of liver with ascites " * 3)
    findings, _ = _run(record(conditions=[long], bps=[bp(120, 80)]), kb)
    assert len(findings[0].facts["condition"]) <= 60
