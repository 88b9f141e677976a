"""A maintenance course keeps its pre-course baseline: a stable responder is not called a non-responder."""

from __future__ import annotations

import pytest
from rules2_support import NOW, days_ago, iv_order, phq9, record, run, topics, weight

from cds_service.record.model import Administration
from cds_service.rules.course import current_course


def _doses(*ages: float) -> list[Administration]:
    return [Administration(f"a{d:g}", days_ago(d), "ketamine") for d in ages]


@pytest.mark.parametrize(("gap", "fires"), [(42, False), (43, True)])
def test_maintenance_responder_boundary(kb, gap, fires):  # type: ignore[no-untyped-def]
    """Baseline 22 before the acute course, PHQ-9 8-9 since. Two doses in the last 6 weeks.

    Doses ``gap`` days apart before that: 42 keeps one course (22 -> 9: response), 43 starts a new course at the
    older of the two recent doses, whose baseline is a mid-course 8 (8 -> 9: no response)."""
    ages = [40.0, 5.0, 40 + gap, 40 + 2 * gap, 40 + 2 * gap + 3, 40 + 2 * gap + 6]
    rec = record(
        weights=[weight(70)],
        administrations=_doses(*ages),
        scores=[phq9(22, 40 + 2 * gap + 8, "base"), phq9(8, 41, "mid"), phq9(9, 2, "now")],
    )
    findings, checks = run(rec, iv_order(35), kb)
    assert ("nonresponse-after-infusions" in topics(findings)) is fires
    course = next(c for c in checks if c.criterion == "Course of treatment")
    if not fires:
        assert "PHQ-9 22 on" in course.note and "course under way since" in course.note


def test_current_course_is_empty_after_the_window(kb):  # type: ignore[no-untyped-def]
    assert current_course(record(administrations=_doses(43, 46)), kb, NOW) == ()
    assert [a.resource_id for a in current_course(record(administrations=_doses(42, 46, 100)), kb, NOW)] == [
        "a46",
        "a42",
    ]
