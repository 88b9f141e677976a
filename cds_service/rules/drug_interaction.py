"""Interacting medicines (clinical-rules.md §3 ``drug-interaction``).

Warning: an MAOI active or stopped within ``interaction.maoi_washout_days`` (phenelzine, tranylcypromine,
isocarboxazid, selegiline by any route, rasagiline, safinamide), or an active psychostimulant (amphetamines,
methylphenidate, modafinil/armodafinil): a further rise in blood pressure. Benzodiazepines and opioids give no
card: the checklist says "sedation: monitor breathing and SpO2" and names them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import ExposurePeriod, PatientRecord
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import compose_names, current_with_role, data_problem, day, is_current

CRITERION = "MAOI or stimulant"
SEDATION = "Sedating medicines"
_READS = (kinds.MEDICATIONS,)


def maoi_within_washout(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[ExposurePeriod, ...]:
    """MAOIs taken now or stopped within the washout. A period's end is its last documented date (a refill with no
    supply duration ends on its own date); an undated use proves history, not recency, and does not count."""
    since = now - timedelta(days=kb.number("interaction.maoi_washout_days"))
    return tuple(
        p for p in record.exposures_with_role("maoi") if is_current(p, now) or (p.end is not None and p.end >= since)
    )


def interaction_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    maoi = maoi_within_washout(record, kb, now)
    stimulants = current_with_role(record, "psychostimulant", now)
    checks = [_sedation_check(record, now)] if _sedatives(record, now) else []
    if not maoi and not stimulants:
        problem = data_problem(record, kinds.MEDICATIONS)
        if problem:
            checks.insert(0, Check(CRITERION, CheckStatus.UNDOCUMENTED, f"not checked: {problem}", reads=_READS))
        else:
            checks.insert(0, Check(CRITERION, CheckStatus.MET, "", reads=_READS))
        return RuleOutcome(checks=tuple(checks))
    days = fmt(kb.number("interaction.maoi_washout_days"))
    parts = [
        f"{p.ingredient} ({'current' if is_current(p, now) else f'stopped {day(p.end)}, within {days} days'})"
        for p in maoi
    ] + [f"{p.ingredient} (current)" for p in stimulants]
    names = [p.ingredient for p in (*maoi, *stimulants)]
    variant = "maoi" if maoi and not stimulants else "stimulant" if stimulants and not maoi else "both"
    evidence = tuple(p.uses[0].evidence() for p in (*maoi, *stimulants) if p.uses)
    card = Finding(
        topic="drug-interaction",
        indicator=Indicator.WARNING,
        facts={"medicine": compose_names(names, 40, "an interacting medicine"), "drug": order.drug.value, "days": days},
        detail=tuple(f"- {p}" for p in parts),
        evidence=evidence,
        variant=variant,
    )
    checks.insert(0, Check(CRITERION, CheckStatus.NOT_MET, "; ".join(parts), evidence, _READS))
    return RuleOutcome(findings=(card,), checks=tuple(checks))


def _sedatives(record: PatientRecord, now: datetime) -> tuple[ExposurePeriod, ...]:
    return (*current_with_role(record, "benzodiazepine", now), *current_with_role(record, "opioid", now))


def _sedation_check(record: PatientRecord, now: datetime) -> Check:
    found = _sedatives(record, now)
    names = ", ".join(sorted({p.ingredient for p in found}))
    evidence = tuple(p.uses[0].evidence() for p in found if p.uses)
    return Check(SEDATION, CheckStatus.MET, f"{names}: sedation: monitor breathing and SpO2", evidence, _READS)


RULES: tuple[OrderRule, ...] = (interaction_rule,)
