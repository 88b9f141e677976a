"""Severity while a course is under way (v2): the pre-course baseline is judged, not the improving latest score;
a course without a baseline gets a checklist line, never a card; no score in 30 days is a data-card item."""

from __future__ import annotations

import pytest

from cds_service.order.model import Drug, Route
from cds_service.record.model import Administration
from cds_service.rules.findings import CheckStatus
from cds_service.rules.severity import severity_rule
from tests.builders.orders import order
from tests.builders.records import record, score
from tests.clock import NOW, days_ago


def _given(*days: float, drug: str = "ketamine") -> tuple[Administration, ...]:
    return tuple(Administration(f"a{d:g}", days_ago(d), drug) for d in days)


def test_responding_mid_course_is_not_warned(kb):
    """Baseline 22 before the first infusion, PHQ-9 9 now: no severity warning at every infusion."""
    rec = record(scores=[score(22, days_ago(20), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(18, 14, 10, 6))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    assert out.findings == () and out.missing == ()
    (check,) = out.checks
    assert check.status is CheckStatus.MET
    assert check.note.startswith("pre-course PHQ-9 22 on 2026-11-03 (course since 2026-11-05; latest PHQ-9 9")
    assert [e.resource_id for e in check.evidence] == ["base-22", "now-9"]


def test_without_a_course_the_latest_score_is_judged(kb):
    """Same scores, no administrations: the latest score (9) is below 15 and warns."""
    rec = record(scores=[score(22, days_ago(20), sid="base"), score(9, days_ago(2), sid="now")])
    (finding,) = severity_rule(rec, order(), kb, NOW).findings
    assert finding.variant == "default" and finding.facts["score"] == "9"


@pytest.mark.parametrize(("baseline", "fires"), [(14, True), (15, False)])
def test_baseline_below_moderately_severe_warns_boundary(kb, baseline, fires):
    rec = record(scores=[score(baseline, days_ago(20), sid="base"), score(20, days_ago(2), sid="now")],
                 administrations=_given(18, 10))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    assert (out.findings != ()) is fires
    if fires:
        (finding,) = out.findings
        assert finding.variant == "baseline"
        assert finding.facts["score"] == "14" and finding.facts["latest"].startswith("PHQ-9 20 on ")
        assert "course since" in out.checks[0].note


@pytest.mark.parametrize(("before_first_dose", "baseline"), [(30, True), (31, False)])
def test_baseline_within_30_days_before_the_first_dose(kb, before_first_dose, baseline):
    """Without a baseline within course.baseline_days, severity at the start cannot be confirmed: a line."""
    rec = record(scores=[score(22, days_ago(18 + before_first_dose), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(18, 10))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    (check,) = out.checks
    if baseline:
        assert check.status is CheckStatus.MET and check.note.startswith("pre-course PHQ-9 22")
    else:
        assert check.status is CheckStatus.UNDOCUMENTED
        assert "no score in the 30 days before its first dose" in check.note


@pytest.mark.parametrize(("last_dose_days", "course"), [(56, True), (57, False)])
def test_a_course_is_under_way_while_the_latest_dose_is_within_8_weeks(kb, last_dose_days, course):
    rec = record(scores=[score(22, days_ago(last_dose_days + 5), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(last_dose_days + 3, last_dose_days))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    assert (out.findings == ()) is course  # no course: the latest score (9) is judged and warns


@pytest.mark.parametrize(("gap", "same_course"), [(56, True), (57, False)])
def test_maintenance_course_keeps_its_first_dose(kb, gap, same_course):
    """Maintenance doses up to course.gap_days apart continue the course begun months ago."""
    doses = tuple(5 + gap * k for k in range(4, -1, -1))  # oldest first, the newest 5 days ago
    rec = record(scores=[score(22, days_ago(doses[0] + 1), sid="base"), score(8, days_ago(6), sid="mid")],
                 administrations=_given(*doses))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    if same_course:
        assert out.findings == () and out.checks[0].note.startswith("pre-course PHQ-9 22")
    else:  # the gap broke the course: the latest course began 5 days ago, after the PHQ-9 of 8
        (finding,) = out.findings
        assert finding.variant == "baseline" and finding.facts["score"] == "8"


def test_the_course_is_the_ordered_drugs(kb):
    """An esketamine course does not make an IV ketamine order's severity a pre-course question."""
    rec = record(scores=[score(22, days_ago(20), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(18, 14, drug="esketamine"))  # fmt: skip
    assert severity_rule(rec, order(), kb, NOW).findings != ()
    assert severity_rule(rec, order(Drug.ESKETAMINE, Route.INTRANASAL), kb, NOW).findings == ()


@pytest.mark.parametrize(("age", "missing"), [(30, False), (30.01, True)])
def test_no_score_in_30_days_is_an_item_of_the_data_card(kb, age, missing):
    out = severity_rule(record(scores=[score(18, days_ago(age))]), order(), kb, NOW)
    assert out.findings == ()
    assert bool(out.missing) is missing
    if missing:
        (item,) = out.missing
        assert (item.key, item.assessment) == ("depression-score", "phq9")
        assert "the latest is PHQ-9 18 on 2026-10-24" in item.line
        assert out.checks[0].status is CheckStatus.UNDOCUMENTED
