"""Section 6: non-response after infusions and the complete acute course."""

from __future__ import annotations

import pytest
from rules2_support import NOW, by_topic, condition, given, iv_order, phq9, record, run, topics, weight

from cds_service.record import kinds
from cds_service.record.model import Administration
from cds_service.rules.findings import CheckStatus, CreateAssessment, Indicator

W = [weight(70)]


def course_topics(rec, kb) -> set[str]:  # type: ignore[no-untyped-def]
    return topics(run(rec, iv_order(35), kb)[0]) & {"nonresponse-after-infusions", "acute-course-complete"}


@pytest.mark.parametrize(("n", "fires"), [(1, False), (2, True)])
def test_one_vs_two_prior_infusions(kb, n, fires):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(n), scores=[phq9(20, 35), phq9(18, 20)])
    assert ("nonresponse-after-infusions" in course_topics(rec, kb)) is fires


@pytest.mark.parametrize(("latest", "fires"), [(10, False), (11, True)])  # 50% of 20 vs 45%
def test_response_boundary(kb, latest, fires):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(2), scores=[phq9(20, 35), phq9(latest, 20)])
    findings, checks = run(rec, iv_order(35), kb)
    assert ("nonresponse-after-infusions" in topics(findings)) is fires
    course = next(c for c in checks if c.criterion == "Course of treatment")
    assert course.status is (CheckStatus.NOT_MET if fires else CheckStatus.MET)


def test_nonresponse_facts(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(3), scores=[phq9(20, 35), phq9(16, 10)])
    f = by_topic(run(rec, iv_order(35), kb)[0], "nonresponse-after-infusions")
    assert f.indicator is Indicator.WARNING and f.variant == "default"
    assert (f.facts["count"], f.facts["baseline"], f.facts["latest"], f.facts["reduction"]) == ("3", "20", "16", "20")


def test_baseline_is_the_last_score_before_the_course(kb):  # type: ignore[no-untyped-def]
    # the score 40 days ago is older than the 31-day-old baseline; a mid-course score does not count as baseline
    rec = record(weights=W, administrations=given(2), scores=[phq9(27, 40), phq9(14, 31), phq9(12, 20)])
    f = by_topic(run(rec, iv_order(35), kb)[0], "nonresponse-after-infusions")
    assert f.facts["baseline"] == "14"


@pytest.mark.parametrize(
    "scores",
    [[], [phq9(18, 20)], [phq9(20, 35)]],
    ids=["no-scores", "no-baseline", "no-follow-up"],
)
def test_unscored_course_says_so_and_suggests_phq9(kb, scores):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(2), scores=scores)
    f = by_topic(run(rec, iv_order(35), kb)[0], "nonresponse-after-infusions")
    assert f.variant == "unscored" and CreateAssessment("phq9") in f.suggestions


def test_window_boundary(kb):  # type: ignore[no-untyped-def]
    inside = [Administration("a1", NOW.replace(day=12, month=10), "ketamine"),
              Administration("a2", NOW.replace(day=1, month=11), "ketamine")]  # 42 d and 22 d ago
    outside = [Administration("a1", NOW.replace(day=11, month=10), "ketamine"), inside[1]]
    scores = [phq9(20, 50), phq9(19, 5)]
    assert "nonresponse-after-infusions" in course_topics(record(weights=W, administrations=inside, scores=scores), kb)
    assert course_topics(record(weights=W, administrations=outside, scores=scores), kb) == set()


def test_esketamine_administrations_count(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(2, drug="esketamine"), scores=[phq9(20, 35), phq9(19, 5)])
    assert "nonresponse-after-infusions" in course_topics(rec, kb)


@pytest.mark.parametrize(("n", "fires"), [(5, False), (6, True)])
def test_acute_course_complete_boundary(kb, n, fires):  # type: ignore[no-untyped-def]
    rec = record(weights=W, administrations=given(n, start_days_ago=40, every=7),
                 scores=[phq9(20, 45), phq9(6, 1)])
    assert ("acute-course-complete" in course_topics(rec, kb)) is fires
    assert "nonresponse-after-infusions" not in course_topics(rec, kb)  # responded: 70% reduction


def test_course_rules_skip_chronic_pain(kb):  # type: ignore[no-untyped-def]
    crps = condition("c-crps", "chronic-pain-crps", "G90.50")
    rec = record(weights=W, conditions=[crps], administrations=given(8, start_days_ago=10, every=1))
    assert course_topics(rec, kb) == set()


def test_administrations_unobtainable_is_on_the_summary_line(kb):  # type: ignore[no-untyped-def]
    rec = record(weights=W, available=kinds.ALL - {kinds.ADMINISTRATIONS})
    _findings, checks = run(rec, iv_order(35), kb)
    assert course_topics(rec, kb) == set()
    course = next(c for c in checks if c.criterion == "Course of treatment")
    assert course.status is CheckStatus.UNDOCUMENTED and "could not be checked" in course.note
