"""Indication (clinical-rules.md §0-1): order reason first, then the problem list; and its two rules."""

from __future__ import annotations

from cds_service.record import kinds
from cds_service.record.model import DataGap, Recognition
from cds_service.rules.findings import CheckStatus, Indicator
from cds_service.rules.indication import (
    IndicationKind,
    PainKind,
    antidepressant_rule,
    data_problem,
    determine_indication,
    indication_rule,
)
from tests.builders.orders import order
from tests.builders.records import ICD, cond, period, record
from tests.clock import NOW, days_ago


def test_order_reason_code_wins_over_problem_list(kb):
    rec = record(depressed=False, conditions=[cond("p1", "ptsd")])
    found = determine_indication(rec, order(reasons=[(ICD, "F33.2")]), kb)
    assert found.kind is IndicationKind.DEPRESSION
    assert found.source == "order"
    assert found.is_depression


def test_order_reason_ptsd_beats_depression_on_problem_list(kb):
    found = determine_indication(record(), order(reasons=[(ICD, "F43.10")]), kb)
    assert found.kind is IndicationKind.PTSD
    assert not found.is_depression


def test_unrecognised_order_reason_falls_back_to_problem_list(kb):
    found = determine_indication(record(), order(reasons=[(ICD, "Z00.00")], reason_text="check-up"), kb)
    assert found.kind is IndicationKind.DEPRESSION
    assert found.source == "problem list"


def test_order_reason_text_only_is_marked_by_name(kb):
    text = "Complex regional pain syndrome, left leg"
    found = determine_indication(record(depressed=False), order(reason_text=text), kb)
    assert found.kind is IndicationKind.CHRONIC_PAIN
    assert found.pain_kind is PainKind.CRPS
    assert found.by_name


def test_reason_reference_to_problem_list_condition(kb):
    rec = record(depressed=False, conditions=[cond("pain-1", "chronic-pain-sci"), cond("ptsd-1", "ptsd")])
    found = determine_indication(rec, order(reason_references=("Condition/pain-1",)), kb)
    assert found.kind is IndicationKind.CHRONIC_PAIN
    assert found.pain_kind is PainKind.SPINAL_CORD_INJURY
    assert found.source == "order"


def test_problem_list_priority_depression_then_ptsd_then_pain(kb):
    pain = cond("c", "chronic-pain-other")
    ptsd = cond("p", "ptsd")
    assert determine_indication(record(conditions=[pain, ptsd]), order(), kb).kind is IndicationKind.DEPRESSION
    only = record(depressed=False, conditions=[pain, ptsd])
    assert determine_indication(only, order(), kb).kind is IndicationKind.PTSD
    found = determine_indication(record(depressed=False, conditions=[pain]), order(), kb)
    assert (found.kind, found.pain_kind) == (IndicationKind.CHRONIC_PAIN, PainKind.OTHER)


def test_pain_kind_crps_outranks_spinal_cord_injury_outranks_other(kb):
    conds = [cond("o", "chronic-pain-other"), cond("s", "chronic-pain-sci"), cond("c", "chronic-pain-crps")]
    assert determine_indication(record(depressed=False, conditions=conds), order(), kb).pain_kind is PainKind.CRPS
    found = determine_indication(record(depressed=False, conditions=conds[:2]), order(), kb)
    assert found.pain_kind is PainKind.SPINAL_CORD_INJURY


def test_bipolar_on_record_turns_depression_into_bipolar_depression(kb):
    active = record(conditions=[cond("b", "bipolar")])
    assert determine_indication(active, order(), kb).kind is IndicationKind.BIPOLAR_DEPRESSION
    resolved = record(conditions=[cond("b", "bipolar", status="resolved")])  # v2 §2: whatever its status
    assert determine_indication(resolved, order(), kb).kind is IndicationKind.BIPOLAR_DEPRESSION
    refuted = record(conditions=[cond("b", "bipolar", verification="refuted")])
    assert determine_indication(refuted, order(), kb).kind is IndicationKind.DEPRESSION
    by_order = determine_indication(active, order(reasons=[(ICD, "F33.1")]), kb)
    assert by_order.kind is IndicationKind.BIPOLAR_DEPRESSION


def test_bipolar_depression_code_is_a_depression_indication(kb):
    found = determine_indication(record(depressed=False), order(reasons=[(ICD, "F31.4")]), kb)
    assert found.kind is IndicationKind.BIPOLAR_DEPRESSION
    assert found.is_depression


def test_inactive_or_refuted_conditions_are_no_indication(kb):
    for c in (cond("d", "depression", status="resolved"), cond("d", "depression", verification="refuted")):
        assert determine_indication(record(depressed=False, conditions=[c]), order(), kb).kind is IndicationKind.NONE


def test_indication_undocumented_fires_for_an_unrecognised_reason(kb):
    out = indication_rule(record(depressed=False), order(reason_text="Dx 4471 per clinic protocol"), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator, f.variant) == ("indication-undocumented", Indicator.WARNING, "default")
    assert "Dx 4471 per clinic protocol" in f.detail[0]
    assert out.checks[0].status is CheckStatus.NOT_MET


def test_indication_documented_gives_met_check_with_evidence(kb):
    out = indication_rule(record(), order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.MET
    assert out.checks[0].evidence[0].resource_id == "dep"


def test_indication_unobtainable_when_conditions_missing(kb):
    rec = record(depressed=False, available=kinds.ALL - {kinds.CONDITIONS})
    (f,) = indication_rule(rec, order(), kb, NOW).findings
    assert f.variant == "unobtainable"


def test_antidepressant_not_concurrent_fires_when_none_current(kb):
    stopped = period("sertraline", days_ago(300), days_ago(100), 100)
    out = antidepressant_rule(record(exposures=[stopped]), order(), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator) == ("antidepressant-not-concurrent", Indicator.WARNING)
    assert "sertraline" in f.detail[0]


def test_antidepressant_current_is_met(kb):
    out = antidepressant_rule(record(exposures=[period("sertraline", days_ago(60))]), order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.MET


def test_antidepressant_ending_in_future_counts_as_current(kb):
    out = antidepressant_rule(record(exposures=[period("sertraline", days_ago(60), NOW)]), order(), kb, NOW)
    assert out.findings == ()


def test_antidepressant_rule_skips_non_depression(kb):
    out = antidepressant_rule(record(depressed=False, conditions=[cond("p", "ptsd")]), order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.NOT_APPLICABLE


def test_antidepressant_unobtainable_when_medications_gap(kb):
    rec = record(gaps=[DataGap("medicationStatements", "the EHR returned an error")])
    (f,) = antidepressant_rule(rec, order(), kb, NOW).findings
    assert f.variant == "unobtainable"
    assert "EHR returned an error" in f.detail[-1]


def test_data_problem_names_gap_or_missing_kind():
    assert data_problem(record(), kinds.BLOOD_PRESSURE) is None
    assert data_problem(record(available=frozenset()), kinds.BLOOD_PRESSURE) is not None
    gap = record(gaps=[DataGap("bloodPressure", "timed out")])
    assert data_problem(gap, kinds.BLOOD_PRESSURE) == "timed out"
    assert data_problem(gap, kinds.SCORES) is None


def test_name_recognised_condition_still_counts(kb):
    c = cond("d2", "depression", recognition=Recognition.NAME)
    found = determine_indication(record(depressed=False, conditions=[c]), order(), kb)
    assert found.kind is IndicationKind.DEPRESSION
