"""Bipolar disorder (clinical-rules.md §2): ``bipolar-mood-stabilizer-missing``, ``bipolar-mood-stabilizer-nonstandard``
and ``mania-current``. Runs whatever the indication.

Bipolar disorder on record counts whatever its clinical status (only a refuted or entered-in-error entry does
not): the mood-stabiliser card is critical while the disorder is active, and a warning when it is inactive, in
remission or resolved, coded as in remission (F31.7x, F30.3/F30.4), or cyclothymia. Cover: lithium or
valproate; other antimanic agents (carbamazepine, antipsychotics with a bipolar indication) are nonstandard
cover; lamotrigine, lurasidone and lumateperone are bipolar-depression agents without antimanic protection.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import ConditionFact, Evidence, ExposurePeriod, PatientRecord
from cds_service.rules.contraindications import dated_within, evidence_of, names_for_summary
from cds_service.rules.findings import Check, CheckStatus, DeleteOrder, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import (
    compose_names,
    condition_names,
    conditions_in,
    current_with_role,
    data_problem,
    is_current,
)

CRITERION = "Bipolar disorder"
STANDARD = "mood-stabilizer-standard"  # lithium, valproate
ANTIMANIC = "mood-stabilizer-other"  # carbamazepine and antipsychotics with a bipolar indication
NO_ANTIMANIC = "bipolar-depression-agent"  # lamotrigine, lurasidone, lumateperone
_STABILIZER_ROLES = frozenset({STANDARD, ANTIMANIC, NO_ANTIMANIC})
_READS = (kinds.CONDITIONS, kinds.MEDICATIONS)


def bipolar_on_record(record: PatientRecord) -> tuple[ConditionFact, ...]:
    """Every bipolar-disorder Condition, whatever its clinical status (refuted and entered-in-error left out)."""
    found = (
        *conditions_in(record, "bipolar", active_only=False),
        *conditions_in(record, "bipolar-depression", active_only=False),
    )
    return tuple(dict.fromkeys(found))


def is_active_bipolar(condition: ConditionFact) -> bool:
    """Active, and neither coded as in remission nor cyclothymia (those make the card a warning)."""
    lesser = {"bipolar-remission", "cyclothymia"}
    key = "bipolar" if "bipolar" in condition.categories else "bipolar-depression"
    return condition.is_active_for(key) and not (condition.categories & lesser)


def bipolar_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    bipolar = bipolar_on_record(record)
    if not bipolar:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, "", reads=(kinds.CONDITIONS,)),))
    active = tuple(c for c in bipolar if is_active_bipolar(c))
    shown = active or bipolar
    diagnosis = condition_names(shown)
    facts = {"diagnosis": names_for_summary(shown, "bipolar disorder"), "drug": order.drug.value}
    cond_ev = evidence_of(shown)
    standard = current_with_role(record, STANDARD, now)
    if standard:
        names = ", ".join(sorted({p.ingredient for p in standard}))
        ev = (*cond_ev, *(p.uses[0].evidence() for p in standard if p.uses))
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, f"{diagnosis}; taking {names}", ev, _READS),))
    antimanic = current_with_role(record, ANTIMANIC, now)
    depression_only = current_with_role(record, NO_ANTIMANIC, now)
    if antimanic or depression_only:
        return _nonstandard(diagnosis, facts, cond_ev, antimanic, depression_only)
    problem = data_problem(record, kinds.MEDICATIONS)
    if problem:
        card = Finding(
            topic="bipolar-mood-stabilizer-missing",
            indicator=Indicator.WARNING,
            facts={**facts, "problem": problem},
            detail=(f"- Medication history could not be obtained: {problem}",),
            evidence=cond_ev,
            variant="unobtainable",
        )
        check = Check(
            CRITERION, CheckStatus.UNDOCUMENTED, f"{diagnosis}; medications could not be obtained", cond_ev, _READS
        )
        return RuleOutcome(findings=(card,), checks=(check,))
    # an antipsychotic without a bipolar indication (e.g. brexpiprazole, an MDD adjunct) is named, not counted
    others = sorted({p.ingredient for p in record.exposures if is_current(p, now) and _antipsychotic(p)})
    state = "active" if active else "inactive, in remission or cyclothymia"
    detail = [f"- {diagnosis} ({state}) and no current lithium or valproate/divalproex on record"]
    note = f"{diagnosis}; no mood stabiliser on record"
    if others:
        names = ", ".join(others)
        detail.append(f"- Current {names}: an antipsychotic without a bipolar indication, so it does not count")
        note += f" ({names} does not count)"
    critical = bool(active)
    card = Finding(
        topic="bipolar-mood-stabilizer-missing",
        indicator=Indicator.CRITICAL if critical else Indicator.WARNING,
        facts=facts,
        detail=tuple(detail),
        evidence=cond_ev,
        suggestions=(DeleteOrder(),) if critical else (),
        variant="default" if critical else "inactive",
    )
    return RuleOutcome(findings=(card,), checks=(Check(CRITERION, CheckStatus.NOT_MET, note, cond_ev, _READS),))


def _nonstandard(
    diagnosis: str,
    facts: dict[str, str],
    cond_ev: tuple[Evidence, ...],
    antimanic: tuple[ExposurePeriod, ...],
    depression_only: tuple[ExposurePeriod, ...],
) -> RuleOutcome:
    covering = (*antimanic, *depression_only)
    names = sorted({p.ingredient for p in covering})
    ev = (*cond_ev, *(p.uses[0].evidence() for p in covering if p.uses))
    variant = "default" if antimanic else "no-antimanic"
    detail = [f"- {diagnosis}: current {', '.join(names)}; no lithium or valproate"]
    if depression_only and not antimanic:
        detail.append("- A bipolar-depression agent without antimanic protection: it does not prevent a manic switch")
    card = Finding(
        topic="bipolar-mood-stabilizer-nonstandard",
        indicator=Indicator.WARNING,
        facts={**facts, "stabilizers": compose_names(names, 40, "another agent")},
        detail=tuple(detail),
        evidence=ev,
        variant=variant,
    )
    what = "without antimanic protection" if variant == "no-antimanic" else "not lithium or valproate"
    check = Check(CRITERION, CheckStatus.NOT_MET, f"{diagnosis}; only {', '.join(names)} ({what})", ev, _READS)
    return RuleOutcome(findings=(card,), checks=(check,))


def _antipsychotic(period: ExposurePeriod) -> bool:
    return "antipsychotic" in (period.drug_class or "") and not period.roles & _STABILIZER_ROLES


def mania_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``mania-current``: an active manic, hypomanic or mixed episode; critical with onset (or recordedDate)
    within ``mania.recent_days``, a warning when older or undated ("confirm the current mood state")."""
    criterion = "Manic or mixed episode"
    episodes = conditions_in(record, "mania")
    if not episodes:
        return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, "", reads=(kinds.CONDITIONS,)),))
    days = kb.number("mania.recent_days")
    recent = tuple(c for c in episodes if dated_within(c, days, now))
    weeks = fmt(days / 7)
    shown = recent or episodes
    facts = {"condition": names_for_summary(shown, "a manic episode"), "weeks": weeks, "drug": order.drug.value}
    ev = evidence_of(episodes)
    if recent:
        card = Finding("mania-current", Indicator.CRITICAL, facts, (), ev, (DeleteOrder(),), variant="recent")
        note = f"{condition_names(recent)}, within the last {weeks} weeks"
    else:
        card = Finding("mania-current", Indicator.WARNING, facts, (), ev, variant="older")
        note = f"{condition_names(episodes)}: active, older than {weeks} weeks or undated"
    return RuleOutcome(findings=(card,), checks=(Check(criterion, CheckStatus.NOT_MET, note, ev, (kinds.CONDITIONS,)),))


RULES: tuple[OrderRule, ...] = (bipolar_rule, mania_rule)
