"""Contraindications and precautions (clinical-rules.md §3), for IV ketamine and esketamine and any indication."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import BloodPressure, ConditionFact, Evidence, PatientRecord, PregnancyTest
from cds_service.rules.findings import (
    Check,
    CheckStatus,
    CreateAssessment,
    DeleteOrder,
    Finding,
    Indicator,
    Rule,
    RuleOutcome,
)
from cds_service.rules.indication import conditions_in, data_problem, day, short
from cds_service.rules.pre_dose import blood_pressure_missing

_SUGGEST = {Indicator.CRITICAL: (DeleteOrder(),), Indicator.WARNING: (), Indicator.INFO: ()}


def _finding(
    topic: str,
    indicator: Indicator,
    facts: dict[str, str],
    evidence: tuple[Evidence, ...],
    *,
    detail: tuple[str, ...] = (),
    variant: str = "default",
    extra: tuple[CreateAssessment, ...] = (),
) -> Finding:
    # The evidence is listed on the card from ``evidence``; ``detail`` holds only what the evidence does not say.
    return Finding(
        topic=topic,
        indicator=indicator,
        facts=facts,
        detail=detail,
        evidence=evidence,
        suggestions=(*_SUGGEST[indicator], *extra),
        variant=variant,
    )


def _short_names(conditions: tuple[ConditionFact, ...]) -> str:
    return short(_names(conditions))


def _names(conditions: tuple[ConditionFact, ...]) -> str:
    return ", ".join(dict.fromkeys(c.label for c in conditions))


def _conditions_unreadable(record: PatientRecord, criterion: str) -> RuleOutcome | None:
    problem = data_problem(record, kinds.CONDITIONS)
    if problem and not record.conditions:
        return RuleOutcome(checks=(Check(criterion, CheckStatus.UNDOCUMENTED, f"conditions not obtained: {problem}"),))
    return None


# ---------------------------------------------------------------- blood pressure


def latest_blood_pressure(record: PatientRecord, kb: Knowledge, now: datetime) -> BloodPressure | None:
    """The newest blood pressure with a reading, taken within ``bp.lookback_days``."""
    since = now - timedelta(days=kb.number("bp.lookback_days"))
    recent = [
        b
        for b in record.blood_pressures
        if b.when is not None and since <= b.when <= now and (b.systolic is not None or b.diastolic is not None)
    ]
    return max(recent, key=lambda b: b.when or now, default=None)


def _at_or_above(bp: BloodPressure, systolic: float, diastolic: float) -> bool:
    return (bp.systolic is not None and bp.systolic >= systolic) or (
        bp.diastolic is not None and bp.diastolic >= diastolic
    )


def _above(bp: BloodPressure, systolic: float, diastolic: float) -> bool:
    return (bp.systolic is not None and bp.systolic > systolic) or (
        bp.diastolic is not None and bp.diastolic > diastolic
    )


def blood_pressure_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``hypertension-uncontrolled``, ``hypertension-elevated``, ``blood-pressure-undocumented``."""
    criterion = "Blood pressure"
    findings: list[Finding] = []
    crisis = conditions_in(record, "hypertensive-crisis")
    if crisis:
        ev = tuple(c.evidence() for c in crisis)
        findings.append(
            _finding(
                "hypertension-uncontrolled",
                Indicator.CRITICAL,
                {"condition": _short_names(crisis)},
                ev,
                variant="condition",
            )
        )
    crit_s, crit_d = kb.number("bp.critical_systolic"), kb.number("bp.critical_diastolic")
    elev_s, elev_d = kb.number("bp.elevated_systolic"), kb.number("bp.elevated_diastolic")
    days = f"{kb.number('bp.lookback_days'):g}"
    bp = latest_blood_pressure(record, kb, now)
    if bp is None:
        problem = data_problem(record, kinds.BLOOD_PRESSURE)
        missing = (blood_pressure_missing(record, kb, now),)  # §8a: a line of pre-dose-data-missing
        note = "could not be obtained" if problem else f"no reading in the last {days} days"
        status = CheckStatus.NOT_MET if crisis else CheckStatus.UNDOCUMENTED
        if crisis:
            note += f"; {_names(crisis)}"
        reads = (kinds.BLOOD_PRESSURE,)
        return RuleOutcome(findings=tuple(findings), checks=(Check(criterion, status, note, reads=reads),),
                           missing=missing)  # fmt: skip
    s = f"{bp.systolic:g}" if bp.systolic is not None else "?"
    d = f"{bp.diastolic:g}" if bp.diastolic is not None else "?"
    facts = {"bp": f"{s}/{d}", "date": day(bp.when)}
    shown = f"{s}/{d} on {day(bp.when)}"
    ev = (bp.evidence(),)
    if _at_or_above(bp, crit_s, crit_d):
        limit = f"{crit_s:g}/{crit_d:g}"
        findings.append(_finding("hypertension-uncontrolled", Indicator.CRITICAL, {**facts, "limit": limit}, ev))
        status, note = CheckStatus.NOT_MET, f"{shown} (hold at {limit} or higher)"
    elif _above(bp, elev_s, elev_d):
        limit = f"{elev_s:g}/{elev_d:g}"
        findings.append(_finding("hypertension-elevated", Indicator.WARNING, {**facts, "limit": limit}, ev))
        status, note = CheckStatus.NOT_MET, f"{shown} (above {limit}: recheck before dosing)"
    else:
        status, note = CheckStatus.MET, shown
    if crisis:
        status, note = CheckStatus.NOT_MET, f"{note}; {_names(crisis)}"
    check_ev = (*ev, *(c.evidence() for c in crisis))
    return RuleOutcome(findings=tuple(findings), checks=(Check(criterion, status, note, check_ev),))


# ---------------------------------------------------------------- condition-based contraindications


def psychosis_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``psychosis``: critical when active; warning (variant "history") when inactive, resolved or in remission."""
    criterion = "Psychosis"
    unreadable = _conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    every = tuple(
        dict.fromkeys(
            (
                *conditions_in(record, "psychosis", active_only=False),
                *conditions_in(record, "psychotic-features", active_only=False),
            )
        )
    )
    active = tuple(c for c in every if c.is_active)
    if active:
        ev = tuple(c.evidence() for c in active)
        finding = _finding("psychosis", Indicator.CRITICAL, {"condition": _short_names(active)}, ev, variant="active")
        return RuleOutcome((finding,), (Check(criterion, CheckStatus.NOT_MET, f"active: {_names(active)}", ev),))
    if every:
        ev = tuple(c.evidence() for c in every)
        finding = _finding("psychosis", Indicator.WARNING, {"condition": _short_names(every)}, ev, variant="history")
        return RuleOutcome((finding,), (Check(criterion, CheckStatus.NOT_MET, f"history: {_names(every)}", ev),))
    return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, "none on record"),))


def ketamine_misuse_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``ketamine-misuse-history``: any record, any clinical status."""
    criterion = "Ketamine or hallucinogen misuse"
    unreadable = _conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    found = conditions_in(record, "ketamine-misuse", active_only=False)
    if not found:
        return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, "none on record"),))
    ev = tuple(c.evidence() for c in found)
    finding = _finding("ketamine-misuse-history", Indicator.CRITICAL, {"condition": _short_names(found)}, ev)
    return RuleOutcome((finding,), (Check(criterion, CheckStatus.NOT_MET, _names(found), ev),))


def substance_use_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``substance-use-disorder``: another active substance use disorder (ketamine misuse has its own card)."""
    criterion = "Other substance use disorder"
    unreadable = _conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    found = tuple(c for c in conditions_in(record, "substance-use") if "ketamine-misuse" not in c.categories)
    if not found:
        return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, "none active"),))
    ev = tuple(c.evidence() for c in found)
    finding = _finding("substance-use-disorder", Indicator.WARNING, {"condition": _short_names(found)}, ev)
    return RuleOutcome((finding,), (Check(criterion, CheckStatus.NOT_MET, _names(found), ev),))


def _active_condition_rule(topic: str, category: str, indicator: Indicator, criterion: str) -> Rule:
    """A rule that fires on any active condition of one category."""

    def rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
        unreadable = _conditions_unreadable(record, criterion)
        if unreadable:
            return unreadable
        found = conditions_in(record, category)
        if not found:
            return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, "none active"),))
        ev = tuple(c.evidence() for c in found)
        finding = _finding(topic, indicator, {"condition": _short_names(found)}, ev)
        return RuleOutcome((finding,), (Check(criterion, CheckStatus.NOT_MET, _names(found), ev),))

    rule.__name__ = f"{category.replace('-', '_')}_rule"
    rule.__doc__ = f"``{topic}``: an active {category} condition."
    return rule


# ---------------------------------------------------------------- pregnancy


def latest_pregnancy_test(record: PatientRecord, kb: Knowledge, now: datetime) -> PregnancyTest | None:
    """The newest interpretable hCG test within ``pregnancy.hcg_lookback_days``."""
    since = now - timedelta(days=kb.number("pregnancy.hcg_lookback_days"))
    recent = [
        t for t in record.pregnancy_tests if t.when is not None and since <= t.when <= now and t.positive is not None
    ]
    return max(recent, key=lambda t: t.when or now, default=None)


def pregnancy_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``pregnancy``: an active pregnancy Condition, or a positive hCG test (the latest) within the window."""
    criterion = "Pregnancy"
    active = conditions_in(record, "pregnancy")
    test = latest_pregnancy_test(record, kb, now)
    positive = test if test is not None and test.positive else None
    if active or positive:
        ev = (*(c.evidence() for c in active), *((positive.evidence(),) if positive else ()))
        facts = {"condition": _short_names(active), "test_date": day(positive.when) if positive else ""}
        finding = _finding("pregnancy", Indicator.CRITICAL, facts, ev, variant="condition" if active else "test")
        return RuleOutcome((finding,), (Check(criterion, CheckStatus.NOT_MET, "; ".join(e.value for e in ev), ev),))
    if data_problem(record, kinds.CONDITIONS) and not record.conditions:
        return RuleOutcome(checks=(Check(criterion, CheckStatus.UNDOCUMENTED, "conditions could not be obtained"),))
    note = "no active pregnancy"
    if test is not None:
        note += f"; negative hCG on {day(test.when)}"
    elif data_problem(record, kinds.PREGNANCY_TESTS):
        note += "; hCG tests could not be obtained"
    ev = (test.evidence(),) if test else ()
    return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, note, ev),))


RULES: tuple[Rule, ...] = (
    blood_pressure_rule,
    psychosis_rule,
    ketamine_misuse_rule,
    substance_use_rule,
    _active_condition_rule(
        "cardiovascular-disease", "cardiovascular", Indicator.CRITICAL, "Cardiovascular or cerebrovascular disease"
    ),
    _active_condition_rule("hepatic-impairment", "hepatic", Indicator.CRITICAL, "Severe hepatic impairment"),
    _active_condition_rule(
        "intracranial-pressure", "intracranial-pressure", Indicator.CRITICAL, "Raised intracranial pressure"
    ),
    _active_condition_rule(
        "intraocular-pressure", "intraocular-pressure", Indicator.WARNING, "Glaucoma or raised intraocular pressure"
    ),
    pregnancy_rule,
)
