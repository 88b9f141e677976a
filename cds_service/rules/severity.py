"""Depression severity (clinical-rules.md §1): ``depression-severity-undocumented`` and
``depression-severity-insufficient``. Depression indications only.

Severity is a criterion for *starting* ketamine (seed 000). While a course is under way (see
``course.current_course``) the score that is judged is the pre-course baseline — the latest score at or before
the course's first administration, within ``severity.lookback_days`` of it — so a patient who is responding is
not warned at every infusion. Without such a baseline the latest score is judged, and the card says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import Instrument, PatientRecord, SeverityScore
from cds_service.rules.course import current_course, pre_course_baseline
from cds_service.rules.findings import (
    Check,
    CheckStatus,
    CreateAssessment,
    Finding,
    Indicator,
    Rule,
    RuleOutcome,
)
from cds_service.rules.indication import data_problem, day, determine_indication

CRITERION = "Depression severity"
# Threshold name of the minimum (moderately severe) score per instrument.
MINIMUM: dict[Instrument, str] = {
    Instrument.PHQ9: "severity.phq9_min",
    Instrument.MADRS: "severity.madrs_min",
    Instrument.HAMD: "severity.hamd_min",
}


def latest_score(record: PatientRecord, kb: Knowledge, now: datetime) -> SeverityScore | None:
    """The newest PHQ-9, MADRS or HAM-D total within ``severity.lookback_days`` of ``now``."""
    since = now - timedelta(days=kb.number("severity.lookback_days"))
    recent = [s for s in record.scores if s.when is not None and since <= s.when <= now]
    return max(recent, key=lambda s: s.when or now, default=None)


def severity_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    indication = determine_indication(record, order, kb)
    if not indication.is_depression:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.NOT_APPLICABLE, f"indication: {indication.label}"),))
    days = f"{kb.number('severity.lookback_days'):g}"
    score = latest_score(record, kb, now)
    if score is None:
        return _undocumented(record, days)
    course = current_course(record, kb, now)
    baseline = _baseline(record, kb, course[0].when) if course else None
    judged = baseline or score
    minimum = kb.number(MINIMUM[judged.instrument])
    facts = {
        "instrument": judged.instrument.value,
        "score": f"{judged.value:g}",
        "minimum": f"{minimum:g}",
        "date": day(judged.when),
        "latest": f"{score.instrument.value} {score.value:g} on {day(score.when)}",
    }
    shown = f"{judged.instrument.value} {judged.value:g} on {day(judged.when)}"
    current = f"{score.instrument.value} {score.value:g} on {day(score.when)}"
    if baseline is not None:
        start = day(course[0].when)
        now_part = f"; current {current}" if baseline is not score and baseline.when != score.when else ""
        shown = f"pre-course baseline {shown} (course since {start}{now_part})"
        ev = tuple(dict.fromkeys((baseline.evidence(), score.evidence())))
    else:
        ev = (score.evidence(),)
        if course:
            shown += f" (course since {day(course[0].when)}; no score in the {days} days before it)"
    if judged.value >= minimum:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, f"{shown} (minimum {minimum:g})", ev),))
    detail: tuple[str, ...]
    if baseline is not None:
        detail = (
            f"- Pre-course baseline: {baseline.evidence().describe()}; moderately severe starts at {minimum:g}",
            f"- Course under way since {day(course[0].when)}: severity is judged before the first dose.",
        )
    else:
        detail = (f"- Latest score: {score.evidence().describe()}; moderately severe starts at {minimum:g}",)
        if course:
            detail += (f"- A course is under way since {day(course[0].when)} and no score was recorded in the "
                       f"{days} days before its first dose, so the latest score is judged.",)  # fmt: skip
    finding = Finding(
        topic="depression-severity-insufficient",
        indicator=Indicator.WARNING,
        facts=facts,
        detail=detail,
        evidence=ev,
        variant="baseline" if baseline is not None else "default",
    )
    check = Check(CRITERION, CheckStatus.NOT_MET, f"{shown} is below {minimum:g}", ev)
    return RuleOutcome(findings=(finding,), checks=(check,))


def _baseline(record: PatientRecord, kb: Knowledge, start: datetime | None) -> SeverityScore | None:
    """The pre-course baseline when it lies within ``severity.lookback_days`` before the course's first dose."""
    if start is None:
        return None
    baseline = pre_course_baseline(record, start)
    since = start - timedelta(days=kb.number("severity.lookback_days"))
    return baseline if baseline is not None and baseline.when is not None and baseline.when >= since else None


def _undocumented(record: PatientRecord, days: str) -> RuleOutcome:
    problem = data_problem(record, kinds.SCORES)
    older = next((s for s in record.scores if s.when is not None), None)
    detail: list[str] = []
    if older is not None:
        detail.append(f"- Latest score on record is older than {days} days: {older.evidence().describe()}")
    if problem:
        detail.append(f"- Depression scores could not be obtained: {problem}")
    finding = Finding(
        topic="depression-severity-undocumented",
        indicator=Indicator.WARNING,
        facts={"days": days, "problem": problem or ""},
        detail=tuple(detail),
        evidence=(older.evidence(),) if older else (),
        suggestions=(CreateAssessment("phq9"),),
        variant="unobtainable" if problem else "default",
    )
    note = "scores could not be obtained" if problem else f"no PHQ-9, MADRS or HAM-D score in {days} days"
    return RuleOutcome(findings=(finding,), checks=(Check(CRITERION, CheckStatus.UNDOCUMENTED, note),))


RULES: tuple[Rule, ...] = (severity_rule,)
