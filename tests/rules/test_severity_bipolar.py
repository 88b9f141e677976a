"""Depression severity (§1) and bipolar mood stabilisers (§2)."""

from __future__ import annotations

import pytest

from cds_service.record import kinds
from cds_service.record.model import DataGap, Instrument
from cds_service.rules.bipolar import bipolar_rule
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator
from cds_service.rules.severity import severity_rule
from tests.builders.orders import order
from tests.builders.records import cond, period, record, score
from tests.clock import NOW, days_ago


@pytest.mark.parametrize(
    ("instrument", "value", "fires"),
    [
        (Instrument.PHQ9, 14, True),
        (Instrument.PHQ9, 15, False),
        (Instrument.MADRS, 19, True),
        (Instrument.MADRS, 20, False),
        (Instrument.HAMD, 16, True),
        (Instrument.HAMD, 17, False),
    ],
)
def test_severity_threshold_per_instrument(kb, instrument, value, fires):
    out = severity_rule(record(scores=[score(value, days_ago(3), instrument)]), order(), kb, NOW)
    assert (out.findings != ()) is fires
    if fires:
        (f,) = out.findings
        assert (f.topic, f.indicator) == ("depression-severity-insufficient", Indicator.WARNING)
        assert f.facts["instrument"] == instrument.value
        assert f.facts["score"] == str(value)
        assert out.checks[0].status is CheckStatus.NOT_MET
    else:
        assert out.checks[0].status is CheckStatus.MET
        assert out.checks[0].evidence[0].value == f"{instrument.value} total {value}"


def test_latest_score_decides(kb):
    scores = [score(20, days_ago(20), sid="old"), score(12, days_ago(2), sid="new")]
    (f,) = severity_rule(record(scores=scores), order(), kb, NOW).findings
    assert f.facts["score"] == "12"


@pytest.mark.parametrize(("age", "documented"), [(30, True), (31, False)])
def test_lookback_window_boundary(kb, age, documented):
    out = severity_rule(record(scores=[score(18, days_ago(age))]), order(), kb, NOW)
    assert out.findings == ()  # v2: no card of its own; an item of the pre-dose-data-missing card
    if documented:
        assert out.missing == ()
    else:
        (item,) = out.missing
        assert (item.key, item.assessment) == ("depression-score", "phq9")
        assert "No PHQ-9, MADRS or HAM-D total in the last 30 days" in item.line
        assert out.checks[0].status is CheckStatus.UNDOCUMENTED


def test_undated_score_cannot_prove_recency(kb):
    (item,) = severity_rule(record(scores=[score(20, None)]), order(), kb, NOW).missing
    assert item.key == "depression-score"


def test_scores_unobtainable(kb):
    for rec in (
        record(available=kinds.ALL - {kinds.SCORES}),
        record(gaps=[DataGap("depressionScores", "the EHR reported an error")]),
    ):
        out = severity_rule(rec, order(), kb, NOW)
        (item,) = out.missing
        assert out.findings == () and "could not be read completely" in item.line and item.assessment == "phq9"


def test_severity_not_applicable_to_chronic_pain(kb):
    out = severity_rule(record(depressed=False, conditions=[cond("c", "chronic-pain-crps")]), order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.NOT_APPLICABLE


# ---------------------------------------------------------------- bipolar

BIPOLAR = cond("bp1", "bipolar", label="Bipolar I disorder")


def test_bipolar_with_lithium_is_fine(kb):
    out = bipolar_rule(record(conditions=[BIPOLAR], exposures=[period("lithium", days_ago(200))]), order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.MET


def test_bipolar_with_lamotrigine_only_is_nonstandard(kb):
    rec = record(conditions=[BIPOLAR], exposures=[period("lamotrigine", days_ago(200))])
    (f,) = bipolar_rule(rec, order(), kb, NOW).findings
    assert (f.topic, f.indicator) == ("bipolar-mood-stabilizer-nonstandard", Indicator.WARNING)
    assert f.facts["stabilizers"] == "lamotrigine"
    assert f.suggestions == ()


def test_bipolar_with_no_mood_stabiliser_is_critical(kb):
    out = bipolar_rule(record(conditions=[BIPOLAR]), order(), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator) == ("bipolar-mood-stabilizer-missing", Indicator.CRITICAL)
    assert f.suggestions == (DeleteOrder(),)
    assert f.evidence[0].resource_id == "bp1"


def test_stopped_lithium_does_not_count(kb):
    rec = record(conditions=[BIPOLAR], exposures=[period("lithium", days_ago(200), days_ago(10))])
    (f,) = bipolar_rule(rec, order(), kb, NOW).findings
    assert f.topic == "bipolar-mood-stabilizer-missing"


def test_bipolar_rule_applies_to_any_indication(kb):
    rec = record(depressed=False, conditions=[BIPOLAR, cond("c", "chronic-pain-crps")])
    (f,) = bipolar_rule(rec, order(), kb, NOW).findings
    assert f.topic == "bipolar-mood-stabilizer-missing"


def test_bipolar_depression_category_counts_as_bipolar(kb):
    rec = record(depressed=False, conditions=[cond("bd", "bipolar-depression")])
    assert bipolar_rule(rec, order(), kb, NOW).findings[0].topic == "bipolar-mood-stabilizer-missing"


@pytest.mark.parametrize("status", ["resolved", "inactive", "remission"])
def test_bipolar_counts_whatever_its_status_and_inactive_is_a_warning(kb, status):
    out = bipolar_rule(record(conditions=[cond("b", "bipolar", status=status)]), order(), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator, f.variant) == ("bipolar-mood-stabilizer-missing", Indicator.WARNING, "inactive")
    assert f.suggestions == ()
    refuted = record(conditions=[cond("b", "bipolar", verification="refuted")])
    assert bipolar_rule(refuted, order(), kb, NOW).findings == ()


def test_bipolar_medications_unobtainable_is_a_warning_without_delete(kb):
    rec = record(conditions=[BIPOLAR], available=kinds.ALL - {kinds.MEDICATIONS})
    (f,) = bipolar_rule(rec, order(), kb, NOW).findings
    assert (f.topic, f.indicator, f.variant) == ("bipolar-mood-stabilizer-missing", Indicator.WARNING, "unobtainable")
    assert f.suggestions == ()
