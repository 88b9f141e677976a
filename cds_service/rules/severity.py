"""Depression severity (clinical-rules.md §1): ``depression-severity-undocumented`` and
``depression-severity-insufficient``. Depression indications only."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import Instrument, PatientRecord, SeverityScore
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
    minimum = kb.number(MINIMUM[score.instrument])
    facts = {
        "instrument": score.instrument.value,
        "score": f"{score.value:g}",
        "minimum": f"{minimum:g}",
        "date": day(score.when),
    }
    ev = (score.evidence(),)
    shown = f"{score.instrument.value} {score.value:g} on {day(score.when)}"
    if score.value >= minimum:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, f"{shown} (minimum {minimum:g})", ev),))
    finding = Finding(
        topic="depression-severity-insufficient",
        indicator=Indicator.WARNING,
        facts=facts,
        detail=(f"- Latest score: {score.evidence().describe()}; moderately severe starts at {minimum:g}",),
        evidence=ev,
    )
    check = Check(CRITERION, CheckStatus.NOT_MET, f"{shown} is below {minimum:g}", ev)
    return RuleOutcome(findings=(finding,), checks=(check,))


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
