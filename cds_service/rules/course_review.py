"""Section 6 of clinical-rules.md: the course so far, judged at the next order
(card texts: ``topics/course_review.yaml``).

``nonresponse-after-infusions``: no ``course.response_reduction_pct`` reduction from the pre-course baseline.
IV ketamine: with ``course.nonresponse_min_infusions`` or more administrations in the course's first
``course.window_days`` (6 weeks), judged only while the course is within those weeks. Esketamine: judged only
once induction is complete (``esketamine.induction_sessions`` sessions, or ``esketamine.induction_weeks`` weeks
since the first), until the course's ``course.esketamine_review_days``, as the label says.

``acute-course-complete`` (IV ketamine only): ``course.acute_course_max`` or more administrations in the acute
phase — the latest run of administrations less than ``course.maintenance_interval_days`` apart — and the course
still at that cadence; once the last interval is a week or more (maintenance) the card is not repeated.

Neither applies to a chronic-pain indication (the response criterion is that of the depression protocols).
The course itself is ``rules/course.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Administration, Evidence, PatientRecord, SeverityScore
from cds_service.rules.course import Course, course_under_way
from cds_service.rules.findings import (
    EMPTY,
    Check,
    CheckStatus,
    Finding,
    Indicator,
    MissingItem,
    OrderRule,
    RuleOutcome,
)
from cds_service.rules.indication import IndicationKind, data_problem, day, determine_indication

COURSE = "Course so far"
NONRESPONSE = "nonresponse-after-infusions"
ACUTE = "acute-course-complete"


def _drug_words(order: MedicationOrder) -> str:
    return "esketamine" if order.drug is Drug.ESKETAMINE else "IV ketamine"


def _applies(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> bool:
    return determine_indication(record, order, kb, now).kind is not IndicationKind.CHRONIC_PAIN


@dataclass(frozen=True)
class _Review:
    """Whether the response is judged now, on which administrations, and if not, why."""

    judged: bool
    given: tuple[Administration, ...]
    why_not: str = ""


def _review(course: Course, order: MedicationOrder, kb: Knowledge, now: datetime) -> _Review:
    since = course.days_since_start(now)
    start = day(course.start)
    if order.drug is Drug.ESKETAMINE:
        sessions = round(kb.number("esketamine.induction_sessions"))
        weeks = kb.number("esketamine.induction_weeks")
        if since > kb.number("course.esketamine_review_days"):
            return _Review(False, (), f"esketamine course since {start}, {course.sessions} sessions: response was "
                           "to be judged at the end of induction")  # fmt: skip
        if course.sessions < sessions and since < weeks * 7:
            return _Review(False, (), f"induction under way: {course.sessions} of {sessions} sessions since {start} "
                           f"(week {course.week_of(now)}); response is judged at the end of induction")  # fmt: skip
        return _Review(True, course.administrations)
    window = kb.number("course.window_days")
    if since > window:
        return _Review(False, (), f"course under way since {start}, {course.sessions} infusions; response is "
                       f"judged in its first {fmt(window / 7)} weeks")  # fmt: skip
    limit = course.start + timedelta(days=window)
    given = tuple(a for a in course.administrations if a.when is not None and a.when <= limit)
    if len(given) < kb.number("course.nonresponse_min_infusions"):
        return _Review(False, given, f"{len(given)} infusion since {start}; response is judged from the second")
    return _Review(True, given)


def nonresponse_after_infusions(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``nonresponse-after-infusions``, and the checklist line on the course so far."""
    gap = data_problem(record, kinds.ADMINISTRATIONS)
    course = course_under_way(record, kb, now, order.drug.value)
    if course is None:
        if gap is not None:
            note = f"earlier ketamine and esketamine doses could not be checked ({gap})"
            return RuleOutcome(checks=(Check(COURSE, CheckStatus.UNDOCUMENTED, note, reads=(kinds.ADMINISTRATIONS,)),))
        weeks = fmt(kb.number("course.gap_days") / 7)
        note = f"first session of a course (no {order.drug.value} given in the last {weeks} weeks)"
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.MET, note, reads=(kinds.ADMINISTRATIONS,)),))
    sessions = tuple(a.evidence() for a in course.administrations)
    reads = (kinds.ADMINISTRATIONS, kinds.SCORES)
    if not _applies(record, order, kb, now):
        note = f"{course.sessions} sessions since {day(course.start)}; chronic pain: response is not judged by score"
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.NOT_APPLICABLE, note, latest_session(sessions), reads),))
    review = _review(course, order, kb, now)
    if not review.judged:
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.MET, review.why_not, latest_session(sessions), reads),))
    return _judge(record, order, kb, course, review.given, sessions, reads)


def _judge(
    record: PatientRecord,
    order: MedicationOrder,
    kb: Knowledge,
    course: Course,
    given: tuple[Administration, ...],
    sessions: tuple[Evidence, ...],
    reads: tuple[str, ...],
) -> RuleOutcome:
    count = len(given)
    start = day(course.start)
    drug = _drug_words(order)
    pct = kb.number("course.response_reduction_pct")
    baseline = course.baseline
    if baseline is None or baseline.value <= 0:
        days = fmt(kb.number("course.baseline_days"))
        note = (f"{count} sessions since {start}; response cannot be judged: no depression score in the {days} "
                "days before the first dose")  # fmt: skip
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.UNDOCUMENTED, note, latest_session(sessions), reads),))
    after = course.scores_since_start(record)
    if not after:
        note = f"{count} sessions since {start}; no {baseline.instrument.value} since the first dose"
        item = MissingItem(
            "depression-score",
            f"No {baseline.instrument.value} since the course began on {start} ({count} sessions): response "
            f"cannot be judged (pre-course {_score(baseline)})",
            "phq9",
            (baseline.evidence(),),
            what="a depression score",
        )
        return RuleOutcome(
            checks=(Check(COURSE, CheckStatus.UNDOCUMENTED, note, (baseline.evidence(),), reads),), missing=(item,)
        )
    latest = after[0]
    reduction = (baseline.value - latest.value) / baseline.value * 100
    lower = f"{fmt(abs(round(reduction)))}% {'lower' if reduction >= 0 else 'higher'}"
    change = f"{baseline.instrument.value} {fmt(baseline.value)} → {fmt(latest.value)} ({lower})"
    note = f"{count} {drug} sessions since {start}; {change}"
    scores = (baseline.evidence(), latest.evidence())
    if reduction >= pct - 1e-9:
        return RuleOutcome(checks=(Check(COURSE, CheckStatus.MET, note + ": response", scores, reads),))
    facts = {
        "count": str(count),
        "drug": drug,
        "since": start,
        "instrument": baseline.instrument.value,
        "baseline": fmt(baseline.value),
        "latest": fmt(latest.value),
        "change": lower,
        "pct": fmt(pct),
    }
    variant = "esketamine" if order.drug is Drug.ESKETAMINE else "default"
    finding = Finding(NONRESPONSE, Indicator.WARNING, facts, (), scores, variant=variant, audit=sessions)
    check = Check(COURSE, CheckStatus.NOT_MET, note + f": no {fmt(pct)}% response", scores, reads)
    return RuleOutcome(findings=(finding,), checks=(check,))


def latest_session(evidence: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
    """Sessions are many and alike: the line names their count and first date, and shows only the latest."""
    return evidence[-1:]


def _score(score: SeverityScore) -> str:
    return f"{score.instrument.value} {fmt(score.value)} on {day(score.when)}"


def acute_run(course: Course, kb: Knowledge) -> tuple[Administration, ...]:
    """The latest run of administrations less than ``course.maintenance_interval_days`` apart, oldest first."""
    interval = timedelta(days=kb.number("course.maintenance_interval_days"))
    run = [course.administrations[-1]]
    for earlier in reversed(course.administrations[:-1]):
        if (run[0].when or course.latest) - (earlier.when or course.start) >= interval:
            break
        run.insert(0, earlier)
    return tuple(run)


def acute_course_complete(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``acute-course-complete``: IV ketamine, 6 or more infusions at acute cadence, the last under a week ago apart."""
    if not order.is_iv_ketamine or not _applies(record, order, kb, now):
        return EMPTY
    course = course_under_way(record, kb, now, Drug.KETAMINE.value)
    if course is None or course.sessions < 2:
        return EMPTY
    last = course.last_interval_days()
    if last is None or last >= kb.number("course.maintenance_interval_days"):
        return EMPTY  # maintenance cadence: the acute course is over, not repeated
    run = acute_run(course, kb)
    if len(run) < kb.number("course.acute_course_max"):
        return EMPTY
    facts = {
        "count": str(len(run)),
        "since": day(run[0].when),
        "max": fmt(kb.number("course.acute_course_max")),
        "interval": fmt(round(last, 1)),
    }
    evidence = (run[0].evidence(), run[-1].evidence())
    audit = tuple(a.evidence() for a in run)
    return RuleOutcome(findings=(Finding(ACUTE, Indicator.INFO, facts, (), evidence, audit=audit),))


RULES: tuple[OrderRule, ...] = (nonresponse_after_infusions, acute_course_complete)
