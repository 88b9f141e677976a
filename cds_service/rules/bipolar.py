"""Bipolar disorder (clinical-rules.md §2): ``bipolar-mood-stabilizer-missing`` and
``bipolar-mood-stabilizer-nonstandard``. Runs whenever bipolar disorder is active, whatever the indication."""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import ExposurePeriod, PatientRecord
from cds_service.rules.findings import (
    Check,
    CheckStatus,
    DeleteOrder,
    Finding,
    Indicator,
    Rule,
    RuleOutcome,
)
from cds_service.rules.indication import conditions_in, current_with_role, data_problem, is_current, short

CRITERION = "Mood stabiliser (bipolar disorder)"


def bipolar_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    bipolar = tuple(dict.fromkeys((*conditions_in(record, "bipolar"), *conditions_in(record, "bipolar-depression"))))
    if not bipolar:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.NOT_APPLICABLE, "no active bipolar disorder"),))
    diagnosis = bipolar[0].label
    standard = current_with_role(record, "mood-stabilizer-standard", now)
    cond_ev = tuple(c.evidence() for c in bipolar)
    if standard:
        names = ", ".join(sorted({p.ingredient for p in standard}))
        ev = (*cond_ev, *(p.uses[0].evidence() for p in standard if p.uses))
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, f"{diagnosis}; taking {names}", ev),))
    other = current_with_role(record, "mood-stabilizer-other", now)
    facts = {"diagnosis": short(diagnosis), "drug": order.drug.value}
    if other:
        names = ", ".join(sorted({p.ingredient for p in other}))
        ev = (*cond_ev, *(p.uses[0].evidence() for p in other if p.uses))
        finding = Finding(
            topic="bipolar-mood-stabilizer-nonstandard",
            indicator=Indicator.WARNING,
            facts={**facts, "stabilizers": short(names, 40)},
            detail=(f"- {diagnosis}: current mood stabiliser(s) {names}; no lithium or valproate",),
            evidence=ev,
        )
        check = Check(CRITERION, CheckStatus.NOT_MET, f"{diagnosis}; only {names} (no lithium or valproate)", ev)
        return RuleOutcome(findings=(finding,), checks=(check,))
    problem = data_problem(record, kinds.MEDICATIONS)
    if problem:
        finding = Finding(
            topic="bipolar-mood-stabilizer-missing",
            indicator=Indicator.WARNING,
            facts={**facts, "problem": problem},
            detail=(f"- Medication history could not be obtained: {problem}",),
            evidence=cond_ev,
            variant="unobtainable",
        )
        check = Check(CRITERION, CheckStatus.UNDOCUMENTED, f"{diagnosis}; medications could not be obtained", cond_ev)
        return RuleOutcome(findings=(finding,), checks=(check,))
    # an antipsychotic with no mood-stabiliser role (e.g. brexpiprazole, an MDD adjunct) is named, not counted
    others = sorted({p.ingredient for p in record.exposures if is_current(p, now) and _antipsychotic(p)})
    detail = [f"- {diagnosis} is active and no current lithium or valproate/divalproex is on record"]
    note = f"{diagnosis}; no mood stabiliser on record"
    if others:
        names = ", ".join(others)
        detail.append(f"- Current {names}: an antipsychotic without a mood-stabiliser role here (not used for "
                      "bipolar disorder), so it does not count")  # fmt: skip
        note += f" ({names} does not count)"
    finding = Finding(
        topic="bipolar-mood-stabilizer-missing",
        indicator=Indicator.CRITICAL,
        facts=facts,
        detail=tuple(detail),
        evidence=cond_ev,
        suggestions=(DeleteOrder(),),
    )
    check = Check(CRITERION, CheckStatus.NOT_MET, note, cond_ev)
    return RuleOutcome(findings=(finding,), checks=(check,))


def _antipsychotic(period: ExposurePeriod) -> bool:
    return "antipsychotic" in (period.drug_class or "") and not period.roles & _STABILIZER_ROLES


_STABILIZER_ROLES = frozenset({"mood-stabilizer-standard", "mood-stabilizer-other"})

RULES: tuple[Rule, ...] = (bipolar_rule,)
