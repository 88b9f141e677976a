"""Depression severity (clinical-rules.md §1): ``depression-severity-insufficient``. Depression indications only.

The deciding score is the latest PHQ-9, MADRS or HAM-D total within ``severity.lookback_days``; while a course
of the ordered drug is under way (``rules/course.py``) it is the course's pre-course baseline, so a patient who
responds is not warned at every infusion. A course with no baseline cannot be judged this way: the checklist
says so and no card is given (severity was decided when the course began). No score within the look-back
window at all is an item of the ``pre-dose-data-missing`` card (the retired ``depression-severity-undocumented``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Instrument, PatientRecord, SeverityScore
from cds_service.rules.course import Course, course_under_way
from cds_service.rules.findings import (
    Check,
    CheckStatus,
    Finding,
    Indicator,
    MissingItem,
    OrderRule,
    RuleOutcome,
)
from cds_service.rules.indication import data_problem, day, determine_indication

CRITERION = "Depression severity"
MISSING_KEY = "depression-score"
READS = (kinds.SCORES,)
# Threshold name of the minimum (moderately severe) score per instrument.
MINIMUM: dict[Instrument, str] = {
    Instrument.PHQ9: "severity.phq9_min",
    Instrument.MADRS: "severity.madrs_min",
    Instrument.HAMD: "severity.hamd_min",
}


def newest_score(record: PatientRecord, now: datetime) -> SeverityScore | None:
    """The newest dated PHQ-9, MADRS or HAM-D total up to ``now``, however old."""
    return max((s for s in record.scores if s.when is not None and s.when <= now), key=lambda s: s.when or now,
               default=None)  # fmt: skip


def latest_score(record: PatientRecord, kb: Knowledge, now: datetime) -> SeverityScore | None:
    """The newest PHQ-9, MADRS or HAM-D total within ``severity.lookback_days`` of ``now``."""
    since = now - timedelta(days=kb.number("severity.lookback_days"))
    score = newest_score(record, now)
    return score if score is not None and score.when is not None and score.when >= since else None


def shown(score: SeverityScore) -> str:
    """"PHQ-9 19 on 2026-12-01"."""
    return f"{score.instrument.value} {fmt(score.value)} on {day(score.when)}"


def severity_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    indication = determine_indication(record, order, kb, now)
    if not indication.is_depression:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.NOT_APPLICABLE, "", reads=READS),))
    score = latest_score(record, kb, now)
    missing = () if score is not None else (_missing(record, kb, now),)
    course = course_under_way(record, kb, now, order.drug.value)
    if course is not None:
        return _during_course(course, score, kb, missing)
    if score is None:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.UNDOCUMENTED, _not_recent(kb), reads=READS),),
                           missing=missing)  # fmt: skip
    return _judge(score, score, None, kb, missing)


def _during_course(
    course: Course, score: SeverityScore | None, kb: Knowledge, missing: tuple[MissingItem, ...]
) -> RuleOutcome:
    if course.baseline is None:
        days = fmt(kb.number("course.baseline_days"))
        note = (f"course under way since {day(course.start)} with no score in the {days} days before its first "
                "dose: severity at the start cannot be confirmed")  # fmt: skip
        ev = (score.evidence(),) if score else ()
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.UNDOCUMENTED, note, ev, READS),), missing=missing)
    return _judge(course.baseline, score, course, kb, missing)


def _judge(
    judged: SeverityScore,
    latest: SeverityScore | None,
    course: Course | None,
    kb: Knowledge,
    missing: tuple[MissingItem, ...],
) -> RuleOutcome:
    minimum = kb.number(MINIMUM[judged.instrument])
    ev = tuple(dict.fromkeys(s.evidence() for s in (judged, latest) if s is not None))
    if course is None:
        what = shown(judged)
    else:
        what = f"pre-course {shown(judged)} (course since {day(course.start)}"
        what += f"; latest {shown(latest)})" if latest is not None and latest.when != judged.when else ")"
    if judged.value >= minimum:
        note = f"{what}: moderately severe or worse (from {fmt(minimum)})"
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, note, ev, READS),), missing=missing)
    facts = {
        "instrument": judged.instrument.value,
        "score": fmt(judged.value),
        "minimum": fmt(minimum),
        "date": day(judged.when),
        "latest": shown(latest) if latest is not None else "no recent score",
    }
    finding = Finding(
        topic="depression-severity-insufficient",
        indicator=Indicator.WARNING,
        facts=facts,
        evidence=ev,
        variant="baseline" if course is not None else "default",
    )
    check = Check(CRITERION, CheckStatus.NOT_MET, f"{what}: below {fmt(minimum)}", ev, READS)
    return RuleOutcome(findings=(finding,), checks=(check,), missing=missing)


def _not_recent(kb: Knowledge) -> str:
    return f"no PHQ-9, MADRS or HAM-D total in the last {fmt(kb.number('severity.lookback_days'))} days"


def _missing(record: PatientRecord, kb: Knowledge, now: datetime) -> MissingItem:
    problem = data_problem(record, kinds.SCORES)
    older = newest_score(record, now)
    line = f"No PHQ-9, MADRS or HAM-D total in the last {fmt(kb.number('severity.lookback_days'))} days"
    if older is not None:
        line += f"; the latest is {shown(older)}"
    if problem:
        line += f" (scores could not be read completely: {problem})"
    line += ": needed to confirm severity and as the baseline for response"
    evidence = (older.evidence(),) if older is not None else ()
    return MissingItem(MISSING_KEY, line, "phq9", evidence, what="a depression score")


RULES: tuple[OrderRule, ...] = (severity_rule,)
