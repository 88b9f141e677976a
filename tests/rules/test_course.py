"""Section 6 (v2): the one course definition, non-response (IV: first 6 weeks; esketamine: end of induction),
and acute-course-complete only at acute cadence."""

from __future__ import annotations

import pytest

from cds_service.record import kinds
from cds_service.record.model import Administration
from cds_service.rules.course import course_under_way, courses, pre_course_baseline
from cds_service.rules.findings import CheckStatus, Indicator
from tests.builders.orders import esk_order, iv_order
from tests.builders.records import condition, given, phq9, record, weight
from tests.clock import NOW, days_ago
from tests.rules.support import by_topic, check, run, run_all, topics

W = [weight(70)]
REVIEW = {"nonresponse-after-infusions", "acute-course-complete"}
COURSE = "Course so far"


def _doses(*ages: float, drug: str = "ketamine") -> list[Administration]:
    return [Administration(f"{drug}-{d:g}", days_ago(d), drug) for d in ages]


def course_topics(rec, kb, order=None) -> set[str]:  # type: ignore[no-untyped-def]
    return topics(run(rec, order or iv_order(35), kb)[0]) & REVIEW


# --- the course: same drug, gap of 8 weeks, under way while the latest is within 8 weeks ----------------

@pytest.mark.parametrize(("gap", "one_course"), [(56, True), (57, False)])
def test_a_gap_over_8_weeks_starts_a_new_course(kb, gap, one_course):  # type: ignore[no-untyped-def]
    rec = record(administrations=_doses(3, 3 + gap, 3 + gap + 4))
    found = courses(rec, kb, NOW, "ketamine")
    assert len(found) == (1 if one_course else 2)
    assert found[-1].start == (days_ago(3 + gap + 4) if one_course else days_ago(3))


@pytest.mark.parametrize(("latest", "under_way"), [(56, True), (56.01, False)])
def test_under_way_while_the_latest_is_within_8_weeks(kb, latest, under_way):  # type: ignore[no-untyped-def]
    rec = record(administrations=_doses(latest, latest + 4))
    assert (course_under_way(rec, kb, NOW, "ketamine") is not None) is under_way


def test_courses_are_per_drug(kb):  # type: ignore[no-untyped-def]
    rec = record(administrations=[*_doses(3, 7), *_doses(5, drug="esketamine")])
    ketamine = course_under_way(rec, kb, NOW, "ketamine")
    esketamine = course_under_way(rec, kb, NOW, "esketamine")
    assert ketamine is not None and ketamine.sessions == 2
    assert esketamine is not None and esketamine.sessions == 1


@pytest.mark.parametrize(("score_age", "baseline"), [(40, True), (40.1, False)])
def test_pre_course_baseline_within_30_days_before_the_first_dose(kb, score_age, baseline):  # type: ignore[no-untyped-def]
    rec = record(administrations=_doses(10, 6), scores=[phq9(21, score_age)])
    assert (pre_course_baseline(rec, kb, days_ago(10)) is not None) is baseline


def test_baseline_is_the_latest_score_before_the_course_not_a_mid_course_one(kb):  # type: ignore[no-untyped-def]
    rec = record(administrations=_doses(20, 16), scores=[phq9(27, 40), phq9(14, 25), phq9(12, 18)])
    found = course_under_way(rec, kb, NOW, "ketamine")
    assert found is not None and found.baseline is not None and found.baseline.value == 14


# --- IV ketamine non-response: two or more infusions, within the course's first 6 weeks ----------------

@pytest.mark.parametrize(("n", "fires"), [(1, False), (2, True)])
def test_one_vs_two_infusions(kb, n, fires):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(n), scores=[phq9(20, 35), phq9(18, 20)])
    assert ("nonresponse-after-infusions" in course_topics(rec, kb)) is fires


@pytest.mark.parametrize(("latest", "fires"), [(10, False), (11, True)])  # 50% of 20 vs 45%
def test_response_boundary(kb, latest, fires):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(2), scores=[phq9(20, 35), phq9(latest, 20)])
    findings, checks = run(rec, iv_order(35), kb)
    assert ("nonresponse-after-infusions" in topics(findings)) is fires
    assert check(checks, COURSE).status is (CheckStatus.NOT_MET if fires else CheckStatus.MET)


def test_nonresponse_facts(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(3), scores=[phq9(20, 35), phq9(16, 10)])
    f = by_topic(run(rec, iv_order(35), kb)[0], "nonresponse-after-infusions")
    assert f.indicator is Indicator.WARNING and f.variant == "default"
    facts = (f.facts["count"], f.facts["baseline"], f.facts["latest"], f.facts["change"])
    assert facts == ("3", "20", "16", "20% lower")


@pytest.mark.parametrize(("start", "judged"), [(42, True), (42.1, False)])
def test_judged_only_within_the_first_6_weeks(kb, start, judged):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=_doses(start, start - 4, 3), scores=[phq9(20, start + 2), phq9(19, 1)])
    findings, checks = run(rec, iv_order(35), kb)
    assert ("nonresponse-after-infusions" in topics(findings)) is judged
    if not judged:
        assert "judged in its first 6 weeks" in check(checks, COURSE).note


def test_maintenance_responder_keeps_the_pre_course_baseline(kb):  # type: ignore[no-untyped-def]
    """Acute course 30-20 days ago from a PHQ-9 of 22, now in remission at 8: the baseline stays 22."""
    rec = record(weights=W, administrations=_doses(30, 27, 24, 20, 5), scores=[phq9(22, 31), phq9(8, 2)])
    findings, checks = run(rec, iv_order(35), kb)
    assert "nonresponse-after-infusions" not in topics(findings)
    assert "PHQ-9 22 → 8 (64% lower): response" in check(checks, COURSE).note


def test_no_baseline_is_a_checklist_line_not_a_card(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(2), scores=[phq9(18, 20)])
    findings, checks, missing = run_all(rec, iv_order(35), kb)
    assert "nonresponse-after-infusions" not in topics(findings) and missing == []
    line = check(checks, COURSE)
    assert line.status is CheckStatus.UNDOCUMENTED and "no depression score in the 30 days before" in line.note


def test_no_score_since_the_course_began_asks_for_one(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(2), scores=[phq9(20, 35)])
    findings, _checks, missing = run_all(rec, iv_order(35), kb)
    assert "nonresponse-after-infusions" not in topics(findings)
    (item,) = missing
    assert (item.key, item.assessment) == ("depression-score", "phq9") and "since the course began" in item.line


# --- esketamine: judged at the end of induction --------------------------------------------------------

def _esketamine(start: float, sessions: int):  # type: ignore[no-untyped-def]
    every = 3.5 if sessions > 1 else 0
    ages = [start - i * every for i in range(sessions)]
    return record(administrations=_doses(*ages, drug="esketamine"), scores=[phq9(22, start + 1), phq9(19, 0.5)])


@pytest.mark.parametrize(("start", "sessions", "judged"), [
    (24.5, 7, False),  # session 7, week 4
    (24.6, 8, True),  # session 8: induction complete
    (20, 3, False),  # week 3, only 3 sessions
    (27.9, 3, False),  # day 27
    (28, 3, True),  # 4 weeks since the first session
    (56, 10, True),  # until week 8
    (56.1, 10, False),  # then no longer judged
])
def test_esketamine_end_of_induction_boundary(kb, start, sessions, judged):  # type: ignore[no-untyped-def]
    findings, checks = run(_esketamine(start, sessions), esk_order(84), kb)
    hits = [f for f in findings if f.topic == "nonresponse-after-infusions"]
    assert bool(hits) is judged
    if judged:
        assert hits[0].variant == "esketamine"
    else:
        assert "induction" in check(checks, COURSE).note


def test_esketamine_responder_at_end_of_induction(kb):  # type: ignore[no-untyped-def]
    rec = record(administrations=_doses(*(26 - 3.5 * i for i in range(8)), drug="esketamine"),
                 scores=[phq9(22, 27), phq9(10, 0.5)])  # fmt: skip
    findings, checks = run(rec, esk_order(84), kb)
    assert "nonresponse-after-infusions" not in topics(findings)
    assert check(checks, COURSE).status is CheckStatus.MET


# --- acute-course-complete: IV ketamine, 6 or more at acute cadence ---------------------------------------

@pytest.mark.parametrize(("n", "fires"), [(5, False), (6, True), (9, True)])
def test_acute_course_count_boundary(kb, n, fires):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(n, start_days_ago=(n - 1) * 3.5 + 1, every=3.5),
                 scores=[phq9(20, 45), phq9(6, 0.5)])  # fmt: skip
    assert ("acute-course-complete" in course_topics(rec, kb)) is fires


@pytest.mark.parametrize(("last_interval", "fires"), [(6.9, True), (7, False), (21, False)])
def test_not_repeated_at_maintenance_cadence(kb, last_interval, fires):  # type: ignore[no-untyped-def]
    acute = [last_interval + 1 + 3.5 * i for i in range(6)]  # six infusions 3.5 days apart
    rec = record(weights=W, administrations=_doses(1, *acute), scores=[phq9(20, 45), phq9(6, 0.5)])
    assert ("acute-course-complete" in course_topics(rec, kb)) is fires


def test_a_new_acute_run_in_maintenance_counts_from_its_start(kb):  # type: ignore[no-untyped-def]
    maintenance = [40, 33, 26]
    rerun = [17.5, 14, 10.5, 7, 3.5, 0.5]
    rec = record(weights=W, administrations=_doses(*maintenance, *rerun), scores=[phq9(20, 45), phq9(6, 0.2)])
    f = by_topic(run(rec, iv_order(35), kb)[0], "acute-course-complete")
    assert f.facts["count"] == "6"


def test_no_acute_course_card_for_esketamine(kb):  # type: ignore[no-untyped-def]
    rec = record(administrations=given(8, start_days_ago=25, every=3.5, drug="esketamine"))
    assert "acute-course-complete" not in course_topics(rec, kb, esk_order(84))


def test_course_rules_skip_chronic_pain(kb):  # type: ignore[no-untyped-def]
    crps = condition("c-crps", "chronic-pain-crps", "G90.50")
    rec = record(depressed=False, weights=W, conditions=[crps], administrations=given(8, start_days_ago=10, every=1))
    assert course_topics(rec, kb) == set()


def test_administrations_unobtainable_is_on_the_summary_line(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, available=kinds.ALL - {kinds.ADMINISTRATIONS})
    findings, checks = run(rec, iv_order(35), kb)
    assert topics(findings) & REVIEW == set()
    line = check(checks, COURSE)
    assert line.status is CheckStatus.UNDOCUMENTED and "could not be checked" in line.note
