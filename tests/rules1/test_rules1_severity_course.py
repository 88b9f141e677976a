"""Severity while a course is under way: the pre-course baseline is judged, not the improving latest score."""

from __future__ import annotations

import pytest
from rules1_build import NOW, days_ago, order, record, score

from cds_service.record.model import Administration
from cds_service.rules.findings import CheckStatus
from cds_service.rules.severity import severity_rule


def _given(*days: float) -> tuple[Administration, ...]:
    return tuple(Administration(f"a{d:g}", days_ago(d), "ketamine") for d in days)


def test_responding_mid_course_is_not_warned(kb):
    """Baseline 22 before the first infusion, PHQ-9 9 now: no severity warning at every infusion."""
    rec = record(scores=[score(22, days_ago(20), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(18, 14, 10, 6))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    (check,) = out.checks
    assert check.status is CheckStatus.MET
    assert "pre-course baseline PHQ-9 22" in check.note and "current PHQ-9 9" in check.note
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


@pytest.mark.parametrize(("before_first_dose", "judged_baseline"), [(30, True), (31, False)])
def test_baseline_lookback_is_counted_from_the_first_dose(kb, before_first_dose, judged_baseline):
    """The baseline must lie within severity.lookback_days before the first dose; else the latest is judged."""
    rec = record(scores=[score(22, days_ago(18 + before_first_dose), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(18, 10))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    assert (out.findings == ()) is judged_baseline
    if not judged_baseline:
        assert "no score in the 30 days before it" in out.checks[0].note


@pytest.mark.parametrize(("last_dose_days", "course"), [(42, True), (43, False)])
def test_a_course_is_under_way_within_the_course_window(kb, last_dose_days, course):
    rec = record(scores=[score(22, days_ago(50), sid="base"), score(9, days_ago(2), sid="now")],
                 administrations=_given(last_dose_days + 3, last_dose_days))  # fmt: skip
    assert (severity_rule(rec, order(), kb, NOW).findings == ()) is course


@pytest.mark.parametrize(("gap", "same_course"), [(42, True), (43, False)])
def test_maintenance_course_keeps_its_first_dose(kb, gap, same_course):
    """Maintenance doses up to course.window_days apart continue the course begun months ago."""
    doses = tuple(5 + gap * k for k in range(8, -1, -1))  # oldest first, the newest 5 days ago
    rec = record(scores=[score(22, days_ago(doses[0] + 1), sid="base"), score(8, days_ago(6), sid="mid")],
                 administrations=_given(*doses))  # fmt: skip
    out = severity_rule(rec, order(), kb, NOW)
    if same_course:
        assert out.findings == () and "pre-course baseline PHQ-9 22" in out.checks[0].note
    else:  # the gap broke the course: the latest course began 5 days ago, after the PHQ-9 of 8
        (finding,) = out.findings
        assert finding.variant == "baseline" and finding.facts["score"] == "8"
