"""The compact eligibility summary (§8, v2) and the engine end to end: words a clinician reads without a legend,
what needs attention first, what was not found gathered on one line, the monitoring per drug, no FHIR ids."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest

from cds_service.order.model import Dose, DoseUnit, Drug, MedicationOrder, Route
from cds_service.record import kinds
from cds_service.record.model import (
    SET_ASIDE_FUTURE,
    SET_ASIDE_OTHER_PATIENT,
    SET_ASIDE_UNREADABLE,
    BodyWeight,
    DataGap,
    Normalisation,
    PatientFacts,
    PatientRecord,
    Recognition,
    SetAside,
    SkippedResource,
)
from cds_service.rules.engine import evaluate
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, MissingItem
from cds_service.rules.summary import checklist, describe_set_aside, summarise, verdict
from tests.builders.orders import order
from tests.builders.records import ICD, bp, cond, good_scores, good_trials, period, record, use
from tests.clock import NOW, days_ago

_ID = re.compile(r"\b(?:Observation|Condition|MedicationStatement|MedicationRequest|MedicationAdministration)/")
_JARGON = re.compile(r"\b(?:met|not met|not documented|not applicable)\b")


def _eligible() -> PatientRecord:
    weights = (BodyWeight("w1", days_ago(3), 70, "70 kg"),)
    eligible = record(exposures=good_trials(), scores=good_scores(), bps=[bp(128, 82)], weights=weights)
    return replace(eligible, patient=PatientFacts(date(1980, 1, 1), "female"))


def _standard() -> MedicationOrder:
    """IV ketamine 35 mg (0.5 mg/kg at 70 kg) over 40 minutes twice weekly."""
    return replace(order(), dose=Dose(35, DoseUnit.MG, "35 mg"), duration_minutes=40, frequency_per_week=2)


def _text(finding: Finding) -> str:
    return "\n".join(finding.detail)


def test_eligible_patient_gets_only_the_summary_in_plain_words(kb):
    ev = evaluate(_eligible(), _standard(), kb, NOW)
    (summary,) = ev.findings
    assert summary.topic == "eligibility-summary" and summary.facts["verdict"] == "no concerns found in the record"
    text = _text(summary)
    assert "**Needs attention**" not in text and text.startswith("**Checked**")
    assert "- **Blood pressure**: 128/82 on 2026-11-21" in text
    assert not _ID.search(text), text
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert not any(_JARGON.search(line.split(":", 1)[0]) for line in lines)


def test_lines_needing_attention_come_first_one_each(kb):
    checks = (
        Check("Psychosis", CheckStatus.MET, ""),
        Check("Blood pressure", CheckStatus.NOT_MET, "165/102 on 2026-11-21, at or above 160/100"),
        Check("Pregnancy", CheckStatus.MET, ""),
        Check("Depression severity", CheckStatus.UNDOCUMENTED, "no PHQ-9, MADRS or HAM-D total in the last 30 days"),
        Check("Body weight", CheckStatus.MET, "80 kg on 2026-11-20"),
        Check("Mood stabiliser (bipolar disorder)", CheckStatus.NOT_APPLICABLE, ""),
        Check("MAOI", CheckStatus.MET, ""),
    )
    lines = checklist(record(), checks)
    assert lines == [
        "**Needs attention**",
        "- **Blood pressure**: 165/102 on 2026-11-21, at or above 160/100",
        "- **Depression severity**: no PHQ-9, MADRS or HAM-D total in the last 30 days",
        "",
        "**Checked**",
        "- **Body weight**: 80 kg on 2026-11-20",
        "- Not found in the record: psychosis, pregnancy, MAOI",
        "- Not applicable to this order: mood stabiliser (bipolar disorder)",
    ]


def test_not_found_on_partial_data_says_which_records_could_not_be_read(kb):
    rec = record(set_aside=(SetAside(kinds.BLOOD_PRESSURE, "could not be read", 2),
                            SetAside(kinds.CONDITIONS, "belong to another patient", 3)))  # fmt: skip
    checks = (
        Check("Psychosis", CheckStatus.MET, "", reads=(kinds.CONDITIONS,)),
        Check("Blood pressure", CheckStatus.MET, "128/82 on 2026-11-21", reads=(kinds.BLOOD_PRESSURE,)),
    )
    text = "\n".join(checklist(rec, checks))
    assert ("- **Psychosis**: not found in the records that could be read (3 condition records belong to another "
            "patient)") in text  # fmt: skip
    assert ("- **Blood pressure**: 128/82 on 2026-11-21; in the records that could be read (2 blood pressure "
            "records could not be read)") in text  # fmt: skip


@pytest.mark.parametrize(
    ("count", "reason", "said"),
    [
        (1, SET_ASIDE_OTHER_PATIENT, "1 condition record belongs to another patient"),
        (2, SET_ASIDE_OTHER_PATIENT, "2 condition records belong to another patient"),
        (1, SET_ASIDE_FUTURE, "1 condition record is dated in the future"),
        (2, SET_ASIDE_FUTURE, "2 condition records are dated in the future"),
        (1, SET_ASIDE_UNREADABLE, "1 condition record could not be read"),
    ],
)
def test_set_aside_records_are_counted_in_grammatical_english(count, reason, said):
    assert describe_set_aside(SetAside(kinds.CONDITIONS, reason, count)) == said


def test_evidence_is_shown_once_in_words_without_ids(kb):
    ev = evaluate(_eligible(), _standard(), kb, NOW)
    text = _text(ev.findings[0])
    assert "PHQ-9 total 18 on 2026-11-20" in text or "PHQ-9 18 on 2026-11-20" in text
    assert text.count("BP 128/82 mmHg") <= 1
    assert not _ID.search(text)
    assert ev.findings[0].audit  # the records behind the lines go to the audit extension


@pytest.mark.parametrize(
    ("critical", "warning", "missing", "expected"),
    [
        (0, 0, 0, "no concerns found in the record"),
        (1, 2, 1, "1 critical, 2 warnings, 1 item to record"),
        (0, 1, 3, "1 warning, 3 items to record"),
    ],
)
def test_verdict(critical, warning, missing, expected):
    assert verdict(critical, warning, missing) == expected


def test_summary_counts_the_items_to_record(kb):
    findings = (Finding("psychosis", Indicator.CRITICAL), Finding("pre-dose-data-missing", Indicator.WARNING))
    items = (MissingItem("blood-pressure", "No blood pressure"), MissingItem("body-weight", "No weight"))
    f = summarise(record(), order(), kb, NOW, (), findings, items)
    assert (f.topic, f.indicator, f.variant) == ("eligibility-summary", Indicator.INFO, "iv-ketamine")
    assert f.facts["verdict"] == "1 critical, 1 warning, 2 items to record"


@pytest.mark.parametrize(
    ("the_order", "expected", "absent"),
    [
        (order(), "100 mg/mL", "REMS"),
        (order(Drug.ESKETAMINE, Route.INTRANASAL), "REMS", "100 mg/mL"),
    ],
)
def test_monitoring_per_drug_rems_is_a_summary_line(kb, the_order, expected, absent):
    text = _text(summarise(record(), the_order, kb, NOW, (), ()))
    assert expected in text and absent not in text
    assert "sedation" in text and "2 hours" in text


def test_iv_monitoring_names_every_requirement(kb):
    text = _text(summarise(record(), order(), kb, NOW, (), ())).lower()
    for words in ("blood pressure", "heart rate", "spo2", "airway", "100 mg/ml", "observe", "benzodiazepines"):
        assert words in text


def test_route_not_stated_is_said_on_the_summary(kb):
    f = summarise(record(), order(route=Route.UNSPECIFIED), kb, NOW, (), ())
    assert f.facts["drug"] == "ketamine (route not stated: checked as IV)" and f.variant == "iv-ketamine"


def test_data_that_could_not_be_read_is_reported_without_values_or_ids(kb):
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
        set_aside=(SetAside(kinds.SCORES, "are dated in the future", 1, ("PHQ-9 22 dated 2026-12-30",)),),
        normalised=(Normalisation(kinds.BLOOD_PRESSURE, "blood pressure sent as text, read as numbers", 2),),
    )
    text = _text(summarise(rec, order(recognition=Recognition.NAME), kb, NOW, (), ()))
    assert "- Blood pressure records could not be obtained: the EHR reported an error" in text
    assert "- Left out as invalid: a Observation (valueQuantity.value: not a number)" in text
    assert "- 1 depression score record is dated in the future: PHQ-9 22 dated 2026-12-30" in text
    assert "- Read with care: blood pressure sent as text, read as numbers (2 blood pressure records)" in text
    assert "medication sertraline" in text and "condition psychotic episode, read as psychosis" in text
    assert "the ordered drug (ketamine)" in text
    assert "obs-secret" not in text and "ms-x" not in text and "c9" not in text


def test_summary_reports_order_reason_read_by_name(kb):
    f = summarise(record(depressed=False), order(reason_text="Treatment-resistant major depression"), kb, NOW, (), ())
    assert f.facts["indication"] == "depression"
    assert any("the order's reason, read as depression" in line for line in f.detail)
    coded = summarise(record(depressed=False), order(reasons=[(ICD, "F33.2")]), kb, NOW, (), ())
    assert not any("read as" in line for line in coded.detail)


def test_engine_orders_summary_first_then_by_urgency(kb):
    rec = record(conditions=[cond("b", "bipolar")], bps=[bp(150, 95)])
    ev = evaluate(rec, order(), kb, NOW)
    assert ev.findings[0].topic == "eligibility-summary"
    ranks = [{"critical": 0, "warning": 1, "info": 2}[f.indicator.value] for f in ev.findings[1:]]
    assert ranks == sorted(ranks)


def test_engine_with_nothing_obtained_gathers_one_data_card(kb):
    ev = evaluate(record(available=frozenset()), order(), kb, NOW)
    assert ev.findings[0].topic == "eligibility-summary"
    data = [f for f in ev.findings if f.topic == "pre-dose-data-missing"]
    assert len(data) == 1 and data[0].indicator is Indicator.WARNING
    assert {m.key for m in ev.missing} >= {"depression-score", "blood-pressure"}
    assert "could not be read completely" in "\n".join(data[0].detail)
    for f in ev.findings:
        assert kb.topics.get(f.topic) is not None and not kb.topics[f.topic].retired, f.topic


def test_what_was_read_with_care_on_the_order_is_said(kb):
    the_order = replace(order(), normalised=("the order's reason (reasonCode) was sent as a single entry, not a "
                                             "list: read as one",),
                        unreadable=("1 of the 2 entries of the order's reason could not be read",))  # fmt: skip
    text = _text(summarise(record(), the_order, kb, NOW, (), ()))
    assert "- The order: the order's reason (reasonCode) was sent as a single entry, not a list: read as one" in text
    assert "- The order: 1 of the 2 entries of the order's reason could not be read" in text
