"""The eligibility summary (§8), the card texts of topics/*.yaml (§9) and the engine end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rules1_build import (
    ICD,
    NOW,
    bp,
    cond,
    days_ago,
    good_scores,
    good_trials,
    hcg,
    order,
    period,
    record,
    score,
    use,
)

from cds_service.order.model import Drug, Route
from cds_service.record import kinds
from cds_service.record.model import DataGap, PatientRecord, Recognition, SkippedResource
from cds_service.rules import bipolar, contraindications, indication, severity, trd
from cds_service.rules.engine import evaluate
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator
from cds_service.rules.summary import summarise

# The texts of the §0-§3 and §7 topics (rules-v2) are tested in tests/rules/test_topic_texts.py.
MY_TOPICS = {
    "eligibility-summary": {"iv-ketamine", "esketamine", "ketamine-other-route"},
    "trd-criteria-unmet": {"default", "unobtainable"},
    "depression-severity-undocumented": {"default", "unobtainable"},
    "depression-severity-insufficient": {"default"},
}
MY_RULES = (*indication.RULES, *trd.RULES, *severity.RULES, *bipolar.RULES, *contraindications.RULES)
LONG = "Schizoaffective disorder, bipolar type, with a very long free-text description from the EHR"


def _eligible() -> PatientRecord:
    return record(exposures=good_trials(), scores=good_scores(), bps=[bp(128, 82)])


def _worst_records() -> Iterator[PatientRecord]:
    """Records that make every Rules I topic and variant fire."""
    every = [
        cond(f"c{i}", cat, label=LONG)
        for i, cat in enumerate(
            [
                "bipolar",
                "psychosis",
                "ketamine-misuse",
                "substance-use",
                "cardiovascular",
                "hepatic",
                "intracranial-pressure",
                "intraocular-pressure",
                "pregnancy",
                "hypertensive-crisis",
            ]
        )
    ]
    yield record(conditions=every, scores=[score(9, days_ago(2))], bps=[bp(190, 120)])
    yield record(
        conditions=[cond("b", "bipolar", label=LONG)],
        exposures=[period("lamotrigine", days_ago(90))],
        bps=[bp(150, 95)],
        tests=[hcg(True, days_ago(3))],
    )
    yield record(conditions=[cond("s", "psychosis", status="resolved", label=LONG)])
    yield record(depressed=False)
    yield record(depressed=False, available=kinds.ALL - {kinds.CONDITIONS})
    yield record(conditions=[cond("b", "bipolar")], available=frozenset({kinds.CONDITIONS}))


def test_every_topic_and_variant_has_texts(kb):
    for code, variants in MY_TOPICS.items():
        topic = kb.topics[code]
        assert set(topic.variants) >= variants, code
        assert topic.source_label and topic.logic and topic.title
        assert "[[" not in topic.logic
        assert topic.references and set(topic.references) <= set(kb.references), code


def test_every_finding_formats_under_140_characters(kb):
    seen: set[tuple[str, str]] = set()
    for rec in _worst_records():
        for the_order in (
            order(),
            order(Drug.ESKETAMINE, Route.INTRANASAL),
            order(Drug.KETAMINE, Route.OTHER, reason_text=LONG),
        ):
            for f in evaluate(rec, the_order, kb, NOW).findings:
                if f.topic not in MY_TOPICS:
                    continue
                text = kb.topics[f.topic].variants[f.variant]
                assert text.indicator == f.indicator.value, (f.topic, f.variant)
                summary = text.summary.format_map(dict(f.facts))  # KeyError if a placeholder has no fact
                text.rationale.format_map(dict(f.facts))
                assert len(summary) < 140, summary
                assert "{" not in summary
                seen.add((f.topic, f.variant))
    expected = {(code, v) for code, vs in MY_TOPICS.items() for v in vs}
    assert expected - seen == set()


def test_critical_cards_offer_delete_and_undocumented_offer_assessment(kb):
    for rec in _worst_records():
        for f in evaluate(rec, order(), kb, NOW).findings:
            if f.topic not in MY_TOPICS:
                continue
            kinds_ = {type(s).__name__ for s in f.suggestions}
            assert ("DeleteOrder" in kinds_) is (f.indicator is Indicator.CRITICAL), f.topic
            if f.topic in ("depression-severity-undocumented", "blood-pressure-undocumented"):
                assert "CreateAssessment" in kinds_


def test_eligible_patient_has_no_rules1_findings(kb):
    ev = evaluate(_eligible(), order(), kb, NOW)
    assert ev.findings[0].topic == "eligibility-summary"
    assert [f.topic for f in ev.findings[1:] if f.topic in MY_TOPICS] == []
    statuses = {c.criterion: c.status for c in ev.checks}
    assert statuses["Treatment resistance"] is CheckStatus.MET
    assert statuses["Blood pressure"] is CheckStatus.MET
    assert statuses["Bipolar disorder"] is CheckStatus.MET


def test_engine_orders_summary_first_then_by_urgency(kb):
    rec = record(conditions=[cond("b", "bipolar")], bps=[bp(150, 95)])
    ev = evaluate(rec, order(), kb, NOW)
    assert ev.findings[0].topic == "eligibility-summary"
    ranks = [{"critical": 0, "warning": 1, "info": 2}[f.indicator.value] for f in ev.findings[1:]]
    assert ranks == sorted(ranks)
    assert "bipolar-mood-stabilizer-missing" in {f.topic for f in ev.findings}


def test_summary_checklist_lists_every_criterion_with_evidence(kb):
    ev = evaluate(_eligible(), order(), kb, NOW)
    summary = ev.findings[0]
    text = "\n".join(summary.detail)
    for criterion in (
        "Indication",
        "Concurrent antidepressant",
        "Treatment resistance",
        "Depression severity",
        "Bipolar disorder",
        "Blood pressure",
        "Psychosis",
        "Pregnancy",
        "Dose",
    ):
        assert f"**{criterion}**" in text
    assert (
        "- **Blood pressure**: met — 128/82 on 2026-11-21, below 140/90. "
        "Evidence: BP 128/82 mmHg (Observation/bp1, 2026-11-21)"
        in text
    )
    assert summary.facts["indication"] == "depression"


def test_summary_counts_and_verdict(kb):
    checks = (
        Check("Blood pressure", CheckStatus.UNDOCUMENTED, "no reading"),
        Check("Psychosis", CheckStatus.MET, "none"),
        Check("Bipolar", CheckStatus.NOT_APPLICABLE, "n/a"),
    )
    findings = (
        Finding("psychosis", Indicator.CRITICAL),
        Finding("hypertension-elevated", Indicator.WARNING),
        Finding("substance-use-disorder", Indicator.WARNING),
    )
    f = summarise(record(), order(), kb, NOW, checks, findings)
    assert (f.topic, f.indicator, f.variant) == ("eligibility-summary", Indicator.INFO, "iv-ketamine")
    assert f.facts["verdict"] == "1 critical, 2 warnings, 1 not documented"
    assert (f.facts["met"], f.facts["total"]) == ("1", "2")
    quiet = summarise(record(), order(), kb, NOW, (Check("Psychosis", CheckStatus.MET, "none"),), ())
    assert quiet.facts["verdict"] == "all checked criteria met"


def test_summary_shows_dose_lines_from_dose_rules(kb):
    dose = Check("Dose", CheckStatus.MET, "35 mg = 0.50 mg/kg (weight 70 kg); standard dose 35 mg over 40 minutes")
    f = summarise(record(), order(), kb, NOW, (dose,), ())
    assert "- **Dose**: met — 35 mg = 0.50 mg/kg (weight 70 kg); standard dose 35 mg over 40 minutes" in f.detail
    missing = summarise(record(), order(), kb, NOW, (), ())
    assert any(line.startswith("- **Dose**: not documented") for line in missing.detail)


@pytest.mark.parametrize(
    ("the_order", "expected", "absent"),
    [
        (order(), "100 mg/mL", "REMS"),
        (order(Drug.ESKETAMINE, Route.INTRANASAL), "REMS", "100 mg/mL"),
    ],
)
def test_summary_monitoring_requirements_per_drug(kb, the_order, expected, absent):
    text = "\n".join(summarise(record(), the_order, kb, NOW, (), ()).detail)
    assert expected in text
    assert absent not in text
    assert "oxygen saturation" in text or "sedation" in text


def test_iv_monitoring_names_every_requirement(kb):
    text = "\n".join(summarise(record(), order(), kb, NOW, (), ()).detail).lower()
    for words in ("blood pressure", "heart rate", "oxygen saturation", "airway", "100 mg/ml", "observ"):
        assert words in text


def test_iv_monitoring_does_not_tell_a_pain_patient_to_continue_an_antidepressant(kb):
    """The monitoring text is the same for every indication (CRPS too): the antidepressant line names depression."""
    lines = summarise(record(), order(), kb, NOW, (), ()).detail
    advice = [line for line in lines if "antidepressant" in line.lower()]
    assert advice and all(line.startswith("- For depression, ") for line in advice), advice


def test_summary_reports_gaps_skipped_and_name_only_without_values(kb):
    rec = record(
        exposures=[
            period(
                "sertraline",
                days_ago(90),
                uses=[use("sertraline", days_ago(90), None, 50, rid="ms-x", recognition=Recognition.NAME)],
            )
        ],
        conditions=[cond("c9", "psychosis", recognition=Recognition.NAME, label="psychotic episode")],
        gaps=[DataGap("bloodPressure", "the EHR reported an error")],
        skipped=(SkippedResource("Observation", "obs-secret", "valueQuantity.value: not a number"),),
    )
    f = summarise(rec, order(recognition=Recognition.NAME), kb, NOW, (), ())
    text = "\n".join(f.detail)
    assert "- bloodPressure: the EHR reported an error" in text
    assert "- Observation: valueQuantity.value: not a number" in text
    assert "obs-secret" not in text
    assert "medication sertraline (MedicationStatement/ms-x)" in text
    assert "condition psychotic episode (Condition/c9): read as psychosis" in text
    assert "the ordered drug (ketamine)" in text


def test_summary_reports_order_reason_read_by_name(kb):
    f = summarise(record(depressed=False), order(reason_text="Treatment-resistant major depression"), kb, NOW, (), ())
    assert f.facts["indication"] == "depression"
    assert any("the order's reason, read as depression" in line for line in f.detail)
    coded = summarise(record(depressed=False), order(reasons=[(ICD, "F33.2")]), kb, NOW, (), ())
    assert not any("read as" in line for line in coded.detail)


def test_summary_line_lengths_fit_in_summary(kb):
    ev = evaluate(next(iter(_worst_records())), order(Drug.ESKETAMINE, Route.INTRANASAL), kb, NOW)
    summary = kb.topics["eligibility-summary"].variants["esketamine"].summary.format_map(dict(ev.findings[0].facts))
    assert len(summary) < 140
    assert summary.startswith("intranasal esketamine for bipolar depression:")


def test_engine_works_with_only_defaults(kb):
    ev = evaluate(record(available=frozenset()), order(), kb, NOW)
    assert ev.findings[0].topic == "eligibility-summary"
    variants = {(f.topic, f.variant) for f in ev.findings}
    assert ("blood-pressure-undocumented", "unobtainable") in variants
    assert ("depression-severity-undocumented", "unobtainable") in variants
    assert ("trd-criteria-unmet", "unobtainable") in variants
    for f in ev.findings:
        assert kb.topics.get(f.topic) is not None, f.topic
