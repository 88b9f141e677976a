"""Contraindications and precautions (clinical-rules.md §3), for IV ketamine and esketamine and any indication.

Blood pressure, psychosis, ketamine misuse, other substance use, cardiovascular, hepatic, intracranial and
intraocular disease. Pregnancy, hypersensitivity, interactions, age, the bladder and breastfeeding have their
own modules. Acute events expire (hypertensive crisis after ``bp.crisis_condition_days``, acute cardiac and
cerebral events become warnings after ``cardiovascular.acute_days``); a history of intracranial haemorrhage,
aneurysm or arteriovenous malformation counts whatever its clinical status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import SET_ASIDE_FUTURE, BloodPressure, ConditionFact, Evidence, PatientRecord
from cds_service.rules.findings import (
    Check,
    CheckStatus,
    DeleteOrder,
    Finding,
    Indicator,
    OrderRule,
    RuleOutcome,
)
from cds_service.rules.indication import compose_names, condition_names, conditions_in, data_problem, day
from cds_service.rules.pre_dose import blood_pressure_missing

_SUGGEST = {Indicator.CRITICAL: (DeleteOrder(),), Indicator.WARNING: (), Indicator.INFO: ()}
NAME_LIMIT = 60  # characters of condition names in a card summary (every template leaves room for them)
_CONDITIONS = (kinds.CONDITIONS,)


def finding(
    topic: str,
    indicator: Indicator,
    facts: dict[str, str],
    evidence: tuple[Evidence, ...],
    *,
    detail: tuple[str, ...] = (),
    variant: str = "default",
) -> Finding:
    """A contraindication finding: critical ones suggest removing the draft order."""
    return Finding(
        topic=topic,
        indicator=indicator,
        facts=facts,
        detail=detail,
        evidence=evidence,
        suggestions=_SUGGEST[indicator],
        variant=variant,
    )


def names_for_summary(conditions: Iterable[ConditionFact], fallback: str) -> str:
    return compose_names([c.label for c in conditions], NAME_LIMIT, fallback)


def conditions_unreadable(record: PatientRecord, criterion: str) -> RuleOutcome | None:
    """The checklist line when the problem list could not be obtained (and nothing was read from it)."""
    problem = data_problem(record, kinds.CONDITIONS)
    if problem and not record.conditions:
        note = f"not checked: the problem list could not be obtained ({problem})"
        return RuleOutcome(checks=(Check(criterion, CheckStatus.UNDOCUMENTED, note, reads=_CONDITIONS),))
    return None


def condition_outcome(
    topic: str,
    criterion: str,
    indicator: Indicator,
    shown: tuple[ConditionFact, ...],
    fallback: str,
    *,
    variant: str = "default",
    note: str | None = None,
    also: tuple[ConditionFact, ...] = (),
    facts: dict[str, str] | None = None,
    reads: tuple[str, ...] = _CONDITIONS,
) -> RuleOutcome:
    """One card naming ``shown`` (``fallback`` when the names do not fit) and its checklist line; ``also`` are
    further conditions listed in the evidence, ``facts`` further card facts."""
    card = finding(
        topic,
        indicator,
        {"condition": names_for_summary(shown, fallback), **(facts or {})},
        evidence_of((*shown, *also)),
        variant=variant,
    )
    line = Check(criterion, CheckStatus.NOT_MET, note or condition_names(shown), card.evidence, reads)
    return RuleOutcome((card,), (line,))


def not_found(criterion: str, reads: tuple[str, ...] = _CONDITIONS) -> RuleOutcome:
    """Looked for and not found: the summary gathers these into one "Not found in the record" line."""
    return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, "", reads=reads),))


def dated_within(condition: ConditionFact, days: float, now: datetime) -> bool:
    when = condition.when
    return when is not None and now - timedelta(days=days) <= when <= now


def evidence_of(conditions: Iterable[ConditionFact]) -> tuple[Evidence, ...]:
    """The conditions' evidence, once each; one recognised by its words says so ("recognised by name")."""
    return tuple(dict.fromkeys(_evidence(c) for c in conditions))


def _evidence(condition: ConditionFact) -> Evidence:
    ev = condition.evidence()
    if condition.named_categories:
        return dataclasses.replace(ev, value=f"{ev.value}, recognised by name")
    return ev


# ---------------------------------------------------------------- blood pressure


def latest_blood_pressure(record: PatientRecord, kb: Knowledge, now: datetime) -> BloodPressure | None:
    """The newest plausible blood pressure with a reading, taken within ``bp.lookback_days``."""
    return _latest(record, kb, now, plausible=True)


def _latest(record: PatientRecord, kb: Knowledge, now: datetime, *, plausible: bool | None) -> BloodPressure | None:
    since = now - timedelta(days=kb.number("bp.lookback_days"))
    recent = [
        b
        for b in record.blood_pressures
        if b.when is not None
        and since <= b.when <= now
        and (b.systolic is not None or b.diastolic is not None)
        and (plausible is None or b.plausible is plausible)
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


def crisis_conditions(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[tuple[ConditionFact, ...], ...]:
    """(hypertensive crises dated within ``bp.crisis_condition_days``, older or undated active ones)."""
    days = kb.number("bp.crisis_condition_days")
    active = conditions_in(record, "hypertensive-crisis")
    recent = tuple(c for c in active if dated_within(c, days, now))
    return recent, tuple(c for c in active if c not in recent)


def future_high_readings(record: PatientRecord, kb: Knowledge) -> tuple[BloodPressure, ...]:
    """Plausible readings set aside as dated in the future that would themselves be above the elevated line
    (clinical-rules.md §10: "a reading of 190/120 is dated in the future: verify"), highest first."""
    elev_s, elev_d = kb.number("bp.elevated_systolic"), kb.number("bp.elevated_diastolic")
    found = [
        r
        for s in record.set_aside_of(kinds.BLOOD_PRESSURE)
        if s.reason == SET_ASIDE_FUTURE
        for r in s.readings
        if isinstance(r, BloodPressure) and r.plausible and _above(r, elev_s, elev_d)
    ]
    return tuple(sorted(found, key=lambda b: (b.systolic or 0, b.diastolic or 0), reverse=True))


def _shown(bp: BloodPressure) -> str:
    s = fmt(bp.systolic) if bp.systolic is not None else "?"
    d = fmt(bp.diastolic) if bp.diastolic is not None else "?"
    return f"{s}/{d}"


def blood_pressure_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``hypertension-uncontrolled`` and ``hypertension-elevated``; no reading within ``bp.lookback_days`` is an item
    of ``pre-dose-data-missing`` (the retired ``blood-pressure-undocumented``).

    A hypertensive urgency/emergency Condition counts only within ``bp.crisis_condition_days`` of its onset;
    older or undated ones are named on the checklist line. An implausible reading never passes the check.
    """
    criterion = "Blood pressure"
    reads = (kinds.BLOOD_PRESSURE, kinds.CONDITIONS)
    findings: list[Finding] = []
    crisis, old_crisis = crisis_conditions(record, kb, now)
    crisis_days = fmt(kb.number("bp.crisis_condition_days"))
    extra = [f"{condition_names(crisis)} within the last {crisis_days} days"] if crisis else []
    if old_crisis:
        extra.append(f"{condition_names(old_crisis)}: older than {crisis_days} days or undated, not counted")
    if crisis:
        findings.append(
            finding(
                "hypertension-uncontrolled",
                Indicator.CRITICAL,
                {"condition": names_for_summary(crisis, "hypertensive crisis"), "date": day(crisis[0].when)},
                evidence_of(crisis),
                variant="condition",
            )
        )
    crit_s, crit_d = kb.number("bp.critical_systolic"), kb.number("bp.critical_diastolic")
    elev_s, elev_d = kb.number("bp.elevated_systolic"), kb.number("bp.elevated_diastolic")
    days = fmt(kb.number("bp.lookback_days"))
    bp = latest_blood_pressure(record, kb, now)
    implausible = _latest(record, kb, now, plausible=False)
    if implausible is not None and (bp is None or (implausible.when or now) > (bp.when or now)):
        extra.append(f"{_shown(implausible)} on {day(implausible.when)} is implausible and was not used")
    crisis_ev = evidence_of((*crisis, *old_crisis))
    if bp is None:
        problem = data_problem(record, kinds.BLOOD_PRESSURE)
        missing = (blood_pressure_missing(record, kb, now),)  # §8a: a line of pre-dose-data-missing
        note = "could not be obtained" if problem else f"no reading in the last {days} days"
        status = CheckStatus.NOT_MET if crisis else CheckStatus.UNDOCUMENTED
        _future_warning(record, kb, findings, extra)
        note = "; ".join((note, *extra))
        check = Check(criterion, status, note, crisis_ev, reads)
        return RuleOutcome(findings=tuple(findings), checks=(check,), missing=missing)
    facts = {"bp": _shown(bp), "date": day(bp.when)}
    shown = f"{_shown(bp)} on {day(bp.when)}"
    ev = (bp.evidence(),)
    if _at_or_above(bp, crit_s, crit_d):
        limit = f"{fmt(crit_s)}/{fmt(crit_d)}"
        findings.append(finding("hypertension-uncontrolled", Indicator.CRITICAL, {**facts, "limit": limit}, ev))
        status, note = CheckStatus.NOT_MET, f"{shown}, at or above {limit}"
    elif _above(bp, elev_s, elev_d):
        limit = f"{fmt(elev_s)}/{fmt(elev_d)}"
        findings.append(finding("hypertension-elevated", Indicator.WARNING, {**facts, "limit": limit}, ev))
        status, note = CheckStatus.NOT_MET, f"{shown}, above {limit}: recheck before dosing"
    else:
        status, note = CheckStatus.MET, f"{shown}, below {fmt(elev_s)}/{fmt(elev_d)}"
    if crisis:
        status = CheckStatus.NOT_MET
    if _future_warning(record, kb, findings, extra):
        status = CheckStatus.NOT_MET
    note = "; ".join((note, *extra))
    return RuleOutcome(findings=tuple(findings), checks=(Check(criterion, status, note, (*ev, *crisis_ev), reads),))


def _future_warning(record: PatientRecord, kb: Knowledge, findings: list[Finding], extra: list[str]) -> bool:
    """Name a high reading dated in the future on the line; a warning card unless a blood-pressure card is
    already given. True when the card was added."""
    future = future_high_readings(record, kb)
    if not future:
        return False
    reading = future[0]
    extra.append(f"a reading of {_shown(reading)} dated {day(reading.when)} is in the future: verify")
    if any(f.topic.startswith("hypertension-") for f in findings):
        return False
    facts = {"bp": _shown(reading), "date": day(reading.when)}
    findings.append(finding("hypertension-elevated", Indicator.WARNING, facts, (reading.evidence(),), variant="future"))
    return True


# ---------------------------------------------------------------- psychosis, misuse, substance use


def psychosis_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``psychosis``: critical when active; warning (variant "history") when inactive, resolved, in remission
    or named only after "history of"."""
    criterion = "Psychosis"
    unreadable = conditions_unreadable(record, criterion)
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
    categories = ("psychosis", "psychotic-features")
    active = tuple(c for c in every if any(k in c.categories and c.is_active_for(k) for k in categories))
    shown, indicator, variant = (
        (active, Indicator.CRITICAL, "active") if active else (every, Indicator.WARNING, "history")
    )
    if not shown:
        return not_found(criterion)
    note = f"{variant}: {condition_names(shown)}"
    return condition_outcome(
        "psychosis", criterion, indicator, shown, "a psychotic disorder", variant=variant, note=note
    )


def prescribed_ketamine(record: PatientRecord) -> bool:
    """Ketamine or esketamine on record as a MedicationRequest, MedicationStatement or MedicationAdministration
    (the record never holds the draft order being checked: draft requests are not history)."""
    drugs = {"ketamine", "esketamine"}
    return bool(record.administrations) or any(u.ingredient in drugs for u in record.medication_uses)


def ketamine_misuse_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``ketamine-misuse-history``: critical for any record (any status) of ketamine, phencyclidine or other
    dissociative use disorder; warning for ketamine cystitis or uropathy with no prescribed ketamine on record."""
    criterion = "Ketamine misuse"
    unreadable = conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    found = conditions_in(record, "ketamine-misuse", active_only=False)
    if found:
        return condition_outcome(
            "ketamine-misuse-history", criterion, Indicator.CRITICAL, found, "ketamine use disorder"
        )
    uropathy = conditions_in(record, "ketamine-uropathy", active_only=False)
    reads = (kinds.CONDITIONS, kinds.MEDICATIONS, kinds.ADMINISTRATIONS)
    if uropathy and not prescribed_ketamine(record):
        note = f"{condition_names(uropathy)} and no prescribed ketamine on record: possible non-medical use"
        return condition_outcome(
            "ketamine-misuse-history",
            criterion,
            Indicator.WARNING,
            uropathy,
            "ketamine cystitis",
            variant="uropathy",
            note=note,
            reads=reads,
        )
    return not_found(criterion, reads if uropathy else _CONDITIONS)


def substance_use_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``substance-use-disorder``: another active substance use disorder (ketamine misuse has its own card).
    Nicotine, use without a disorder and remission are a checklist line, never a card."""
    criterion = "Other substance use disorder"
    unreadable = conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    found = tuple(c for c in conditions_in(record, "substance-use") if "ketamine-misuse" not in c.categories)
    if found:
        return condition_outcome(
            "substance-use-disorder", criterion, Indicator.WARNING, found, "a substance use disorder"
        )
    minor = tuple(c for c in conditions_in(record, "substance-use-no-card") if "ketamine-misuse" not in c.categories)
    if minor:
        note = f"{condition_names(minor)}: no card (nicotine, use without a disorder, or in remission)"
        return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, note, evidence_of(minor), _CONDITIONS),))
    return not_found(criterion)


# ---------------------------------------------------------------- cardiovascular


def cardiovascular_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``cardiovascular-disease``.

    Critical: intracranial haemorrhage, aneurysmal vascular disease or an arteriovenous malformation whatever
    the clinical status (variant "history"); an acute coronary syndrome, acute heart failure, stroke or TIA
    dated within ``cardiovascular.acute_days`` whatever its status (variant "acute"). Warning: the same acute
    events older or undated, or named only after "history of" (variant "past-event"); stable angina, chronic
    or unspecified heart failure and the after-effects of a past event while not resolved (variant "stable").
    """
    criterion = "Cardiovascular or cerebrovascular disease"
    unreadable = conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    days = kb.number("cardiovascular.acute_days")
    history = conditions_in(record, "cardiovascular-history", active_only=False)
    acute = [c for c in conditions_in(record, "cardiovascular", active_only=False) if c not in history]
    recent = tuple(c for c in acute if "cardiovascular" not in c.history_categories and dated_within(c, days, now))
    past = tuple(c for c in acute if c not in recent)
    stable = tuple(
        c
        for c in conditions_in(record, "cardiovascular-stable", active_only=False)
        if c.clinical_status != "resolved"
        and "cardiovascular-stable" not in c.history_categories
        and c not in history
        and c not in acute
    )
    weeks = fmt(days / 7)
    if history or recent:
        note = "; ".join(
            part
            for part in (
                f"history of {condition_names(history)} (any status)" if history else "",
                f"{condition_names(recent)} within the last {weeks} weeks" if recent else "",
                f"also {condition_names((*past, *stable))}" if past or stable else "",
            )
            if part
        )
        return condition_outcome(
            "cardiovascular-disease",
            criterion,
            Indicator.CRITICAL,
            (*history, *recent),
            "cardiovascular disease",
            variant="history" if history else "acute",
            note=note,
            also=(*past, *stable),
            facts={"weeks": weeks},
        )
    if past or stable:
        note = "; ".join(
            part
            for part in (
                f"{condition_names(past)}: older than {weeks} weeks or undated" if past else "",
                f"{condition_names(stable)}: stable or chronic" if stable else "",
            )
            if part
        )
        return condition_outcome(
            "cardiovascular-disease",
            criterion,
            Indicator.WARNING,
            (*past, *stable),
            "cardiovascular disease",
            variant="past-event" if past else "stable",
            note=note,
            facts={"weeks": weeks},
        )
    return not_found(criterion)


# ---------------------------------------------------------------- hepatic, intracranial, intraocular


def hepatic_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``hepatic-impairment``: critical for active decompensated or severe hepatic dysfunction, or active
    cirrhosis together with an active sign of decompensation (ascites, varices, bacterial peritonitis);
    warning for active compensated cirrhosis."""
    criterion = "Liver disease"
    unreadable = conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    severe = conditions_in(record, "hepatic")
    cirrhosis = tuple(c for c in conditions_in(record, "hepatic-cirrhosis") if c not in severe)
    signs = conditions_in(record, "hepatic-decompensation-sign") if cirrhosis else ()
    if severe or signs:
        everything = (*severe, *cirrhosis, *signs)
        note = condition_names(everything)
        return condition_outcome(
            "hepatic-impairment",
            criterion,
            Indicator.CRITICAL,
            (*severe, *signs),
            "decompensated liver disease",
            variant="decompensated",
            note=note,
            also=cirrhosis,
        )
    if cirrhosis:
        note = f"{condition_names(cirrhosis)}: no sign of decompensation on record"
        return condition_outcome(
            "hepatic-impairment", criterion, Indicator.WARNING, cirrhosis, "cirrhosis", variant="compensated", note=note
        )
    return not_found(criterion)


def intracranial_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``intracranial-pressure``: critical for active raised intracranial pressure, a malignant or uncertain
    intracranial mass or hydrocephalus; warning for a benign tumour or normal-pressure hydrocephalus."""
    criterion = "Raised intracranial pressure"
    unreadable = conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    raised = conditions_in(record, "intracranial-pressure")
    benign = tuple(c for c in conditions_in(record, "intracranial-benign") if c not in raised)
    if raised:
        return condition_outcome(
            "intracranial-pressure", criterion, Indicator.CRITICAL, raised, "raised intracranial pressure", also=benign
        )
    if benign:
        return condition_outcome(
            "intracranial-pressure",
            criterion,
            Indicator.WARNING,
            benign,
            "a benign intracranial lesion",
            variant="benign",
        )
    return not_found(criterion)


def intraocular_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``intraocular-pressure``: active glaucoma or ocular hypertension (warning)."""
    criterion = "Glaucoma"
    unreadable = conditions_unreadable(record, criterion)
    if unreadable:
        return unreadable
    found = conditions_in(record, "intraocular-pressure")
    if not found:
        return not_found(criterion)
    return condition_outcome("intraocular-pressure", criterion, Indicator.WARNING, found, "glaucoma")


RULES: tuple[OrderRule, ...] = (
    blood_pressure_rule,
    psychosis_rule,
    ketamine_misuse_rule,
    substance_use_rule,
    cardiovascular_rule,
    hepatic_rule,
    intracranial_rule,
    intraocular_rule,
)
