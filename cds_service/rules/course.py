"""Section 6 of clinical-rules.md: the course of treatment so far.

Counts completed ketamine/esketamine administrations (``record.administrations``) within ``course.window_days``.
``nonresponse-after-infusions``: at least ``course.nonresponse_min_infusions`` of them and no
``course.response_reduction_pct`` reduction from the pre-course baseline score (or no scores to tell).
``acute-course-complete``: ``course.acute_course_max`` or more. Neither applies to a chronic-pain indication
(the course and the response criterion are those of the depression protocols).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Administration, PatientRecord, SeverityScore
from cds_service.rules.findings import (
    EMPTY,
    Check,
    CheckStatus,
    CreateAssessment,
    Finding,
    Indicator,
    Rule,
    RuleOutcome,
)
from cds_service.rules.indication import IndicationKind, data_problem, determine_indication

COURSE = "Course of treatment"


def course_administrations(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[Administration, ...]:
    """Completed administrations within ``course.window_days`` before ``now``, oldest first."""
    cutoff = now - timedelta(days=kb.number("course.window_days"))
    dated = [a for a in record.administrations if a.when is not None and cutoff <= a.when <= now]
    return tuple(sorted(dated, key=lambda a: a.when or now))


def current_course(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[Administration, ...]:
    """The administrations of the course under way, oldest first; () when none is within ``course.window_days``.

    A course is a run of administrations with no gap longer than ``course.window_days`` between consecutive
    ones, so a maintenance course (tapering to every 3-4 weeks, seed 001) keeps the start of its acute phase.
    """
    window = timedelta(days=kb.number("course.window_days"))
    dated = sorted((a for a in record.administrations if a.when is not None and a.when <= now),
                   key=lambda a: a.when or now)  # fmt: skip
    if not dated or (dated[-1].when or now) < now - window:
        return ()
    first = len(dated) - 1
    while first > 0 and (dated[first].when or now) - (dated[first - 1].when or now) <= window:
        first -= 1
    return tuple(dated[first:])


def pre_course_baseline(record: PatientRecord, start: datetime) -> SeverityScore | None:
    """The pre-course baseline: the latest score at or before the course's first administration."""
    before = [s for s in record.scores if s.when is not None and s.when <= start]
    return max(before, key=lambda s: s.when or start) if before else None


def _baseline_and_latest(
    record: PatientRecord, start: datetime
) -> tuple[SeverityScore | None, SeverityScore | None]:
    """The pre-course baseline and the latest later score on the same instrument."""
    baseline = pre_course_baseline(record, start)
    if baseline is None:
        return None, None
    after = [s for s in record.scores if s.when is not None and s.when > start and s.instrument is baseline.instrument]
    latest = max(after, key=lambda s: s.when or start) if after else None
    return baseline, latest


def _day(score: SeverityScore) -> str:
    return score.when.date().isoformat() if score.when else "date unknown"


def _applies(record: PatientRecord, order: MedicationOrder, kb: Knowledge) -> bool:
    return determine_indication(record, order, kb).kind is not IndicationKind.CHRONIC_PAIN


def nonresponse_after_infusions(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``nonresponse-after-infusions`` (variant ``unscored`` when the response cannot be judged from scores)."""
    gap = data_problem(record, kinds.ADMINISTRATIONS)
    given = course_administrations(record, kb, now)
    window = fmt(kb.number("course.window_days"))
    if gap is not None and not given:
        note = f"prior ketamine/esketamine administrations could not be checked: {gap}"
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.UNDOCUMENTED, note),))
    if not _applies(record, order, kb):
        note = "chronic-pain indication: the depression course criteria do not apply"
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.NOT_APPLICABLE, note),))
    count = len(given)
    evidence = tuple(a.evidence() for a in given)
    if count < kb.number("course.nonresponse_min_infusions"):
        note = f"{count} administration(s) in the last {window} days"
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.MET, note, evidence),))
    first_in_window = given[0].when
    course_start = current_course(record, kb, now)[0].when
    assert first_in_window is not None and course_start is not None
    facts = {"count": str(count), "days": window, "since": first_in_window.date().isoformat(),
             "course_start": course_start.date().isoformat(),
             "pct": fmt(kb.number("course.response_reduction_pct"))}
    baseline, latest = _baseline_and_latest(record, course_start)
    course_line: tuple[str, ...] = ()
    if course_start < first_in_window:
        course_line = (f"Course under way since {facts['course_start']} (no gap over {window} days between doses): "
                       "the baseline is the latest score before its first dose.",)
    if baseline is None or latest is None or baseline.value <= 0:
        missing = "no score before the first administration" if baseline is None else (
            "no score since the course started" if latest is None else "baseline score is 0")
        facts["missing"] = missing
        finding = Finding(
            "nonresponse-after-infusions", Indicator.WARNING, facts,
            (*course_line, f"Response could not be judged: {missing}."),
            evidence + ((baseline.evidence(),) if baseline else ()),
            (CreateAssessment("phq9"),), variant="unscored",
        )
        note = f"{count} administrations since {facts['since']}; response not documented ({missing})"
        return RuleOutcome(findings=(finding,), checks=(Check(COURSE, CheckStatus.UNDOCUMENTED, note, evidence),))
    reduction = (baseline.value - latest.value) / baseline.value * 100
    facts.update(
        instrument=baseline.instrument.value, baseline=fmt(baseline.value), latest=fmt(latest.value),
        reduction=fmt(round(reduction)),
    )
    scores = (baseline.evidence(), latest.evidence())
    note = (f"{count} administrations since {facts['since']}; {baseline.instrument.value} "
            f"{facts['baseline']} on {_day(baseline)} -> {facts['latest']} on {_day(latest)} "
            f"({facts['reduction']}% reduction)")
    if course_line:
        note += f"; course under way since {facts['course_start']}"
    if reduction >= kb.number("course.response_reduction_pct") - 1e-9:
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.MET, note, evidence + scores),))
    finding = Finding("nonresponse-after-infusions", Indicator.WARNING, facts, course_line, evidence + scores)
    return RuleOutcome(findings=(finding,), checks=(Check(COURSE, CheckStatus.NOT_MET, note, evidence + scores),))


def acute_course_complete(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``acute-course-complete``: ``course.acute_course_max`` or more administrations in the window."""
    given = course_administrations(record, kb, now)
    if len(given) < kb.number("course.acute_course_max") or not _applies(record, order, kb):
        return EMPTY
    first = given[0].when
    facts = {
        "count": str(len(given)),
        "days": fmt(kb.number("course.window_days")),
        "since": first.date().isoformat() if first else "date unknown",
        "max": fmt(kb.number("course.acute_course_max")),
    }
    evidence = tuple(a.evidence() for a in given)
    return RuleOutcome(findings=(Finding("acute-course-complete", Indicator.INFO, facts, (), evidence),))


RULES: tuple[Rule, ...] = (nonresponse_after_infusions, acute_course_complete)
