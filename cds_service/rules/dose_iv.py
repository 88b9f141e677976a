"""Section 4 of clinical-rules.md: dose and administration of IV ketamine.

Bands on the mg/kg dose (``iv.*`` thresholds): < low range -> ``dose-below-range``; above the standard dose
plus ``iv.standard_tolerance_pct`` -> ``dose-above-standard``; >= anaesthetic -> ``dose-anesthetic-range``
(critical). Plus the infusion time, the frequency per week, the missing weight, and the
``dose-standard-suggestion`` that rewrites the order to the standard dose.

The bands, the infusion time, the frequency and the suggestion are those of the depression protocols (seeds
000, 001): for a chronic-pain indication (CRPS protocols run 0.35 mg/kg/h over 4 hours, or 22 mg/h for days;
seed 004) they do not apply, and the summary's Dose line says so; the weight is still required.

On order-select an order without a dose gets no dose findings (it is not complete yet); on order-sign a
dose that is missing or unreadable is said so on a ``dose-standard-suggestion`` card (variant
``unreadable``), never guessed.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import DoseUnit, Drug, MedicationOrder, OrderStage
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Evidence, PatientRecord
from cds_service.rules.dosing import EPSILON, IvDose, assess_iv, clip, stale_weight
from cds_service.rules.findings import (
    EMPTY,
    Check,
    CheckStatus,
    DeleteOrder,
    Finding,
    Indicator,
    RewriteDose,
    Rule,
    RuleOutcome,
)
from cds_service.rules.indication import IndicationKind, data_problem, determine_indication

DOSE = "Dose"


def _facts(dose: IvDose, kb: Knowledge, order: MedicationOrder) -> dict[str, str]:
    facts = {
        "ordered": order.dose.as_written if order.dose else "no dose",
        "standard_mg_per_kg": fmt(kb.number("iv.standard_mg_per_kg")),
        "standard_minutes": fmt(kb.number("iv.standard_infusion_minutes")),
    }
    if dose.mg_per_kg is not None:
        facts["mg_per_kg"] = fmt(dose.mg_per_kg)
    if dose.dose_mg is not None:
        facts["dose_mg"] = fmt(dose.dose_mg)
    if dose.weight is not None:
        facts["weight_kg"] = fmt(dose.weight.kg)
        facts["weight_date"] = dose.weight.when.date().isoformat() if dose.weight.when else "date unknown"
    if dose.standard_mg is not None:
        facts["standard_mg"] = fmt(dose.standard_mg)
    if dose.minutes is not None:
        facts["minutes"] = fmt(dose.minutes)
    return facts


def _evidence(dose: IvDose) -> tuple[Evidence, ...]:
    return (dose.weight.evidence(),) if dose.weight is not None else ()


def _problem_lines(order: MedicationOrder) -> tuple[str, ...]:
    return tuple(f"Order: {p}." for p in order.problems)


def _pain_protocol(record: PatientRecord, order: MedicationOrder, kb: Knowledge) -> bool:
    """A chronic-pain indication: the depression dose rules of this module do not apply."""
    return determine_indication(record, order, kb).kind is IndicationKind.CHRONIC_PAIN


def weight_undocumented(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``weight-undocumented``: no body weight within ``weight.lookback_days`` (also on order-select)."""
    if not order.is_iv_ketamine or assess_iv(record, order, kb, now).weight is not None:
        return EMPTY
    facts = {"days": fmt(kb.number("weight.lookback_days"))}
    problem = data_problem(record, kinds.WEIGHT)
    detail: list[str] = []
    evidence: tuple[Evidence, ...] = ()
    old = stale_weight(record, kb, now)
    if old is not None:
        detail.append(f"Latest weight on record is older than {facts['days']} days: {old.evidence().describe()}.")
        evidence = (old.evidence(),)
    if problem is not None:
        facts["reason"] = problem
        detail.append(f"Weight data could not be obtained: {problem}.")
    if problem is not None:
        variant = "unobtainable"
    elif order.dose is not None and order.dose.unit is DoseUnit.MG_PER_KG:
        variant = "weight-based-order"
        facts["ordered"] = order.dose.as_written
    else:
        variant = "default"
    finding = Finding("weight-undocumented", Indicator.WARNING, facts, tuple(detail), evidence, variant=variant)
    return RuleOutcome(findings=(finding,))


def dose_bands(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``dose-below-range`` / ``dose-above-standard`` / ``dose-anesthetic-range`` and the summary's Dose line."""
    if order.drug is not Drug.KETAMINE:
        return EMPTY
    if not order.is_iv_ketamine:
        note = f"route {order.route.value}: the IV ketamine dose rules do not apply"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.NOT_APPLICABLE, note),))
    dose = assess_iv(record, order, kb, now)
    if order.dose is None:
        if order.stage is OrderStage.SELECT and not order.problems:
            note = "no dose entered yet"
        else:
            note = "dose could not be read: " + "; ".join(order.problems) if order.problems else "no dose on the order"
        if dose.weight is not None and dose.standard_mg is not None:
            note += f"; standard for {fmt(dose.weight.kg)} kg: {fmt(dose.standard_mg)} mg over " + fmt(
                kb.number("iv.standard_infusion_minutes")
            ) + " min"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.UNDOCUMENTED, note, _evidence(dose)),))

    if _pain_protocol(record, order, kb):
        note = dose.describe() + "; chronic-pain indication: the depression dose bands do not apply"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.NOT_APPLICABLE, note, _evidence(dose)),))
    findings: list[Finding] = []
    x = dose.mg_per_kg
    facts = _facts(dose, kb, order)
    detail = _problem_lines(order)
    evidence = _evidence(dose)
    standard = kb.number("iv.standard_mg_per_kg")
    above = standard * (1 + kb.number("iv.standard_tolerance_pct") / 100)
    anesthetic = kb.number("iv.anesthetic_mg_per_kg")
    low = kb.number("iv.low_range_mg_per_kg")
    if x is not None:
        if x >= anesthetic - EPSILON:
            facts["limit"] = fmt(anesthetic)
            findings.append(
                Finding("dose-anesthetic-range", Indicator.CRITICAL, facts, detail, evidence, (DeleteOrder(),))
            )
        elif x > above + EPSILON and not _is_rounded_standard(dose, kb):
            facts["limit"] = fmt(above)
            findings.append(Finding("dose-above-standard", Indicator.WARNING, facts, detail, evidence))
        elif x < low - EPSILON:
            facts["limit"] = fmt(low)
            findings.append(Finding("dose-below-range", Indicator.WARNING, facts, detail, evidence))
    note = dose.describe()
    if order.frequency_per_week is not None:
        note += f"; {fmt(order.frequency_per_week)} per week"
    if order.problems:
        note += "; notes: " + "; ".join(order.problems)
    if x is None:
        status = CheckStatus.UNDOCUMENTED
    elif findings or _too_fast(dose, kb) or _too_often(order, kb):
        status = CheckStatus.NOT_MET
    else:
        status = CheckStatus.MET
    return RuleOutcome(findings=tuple(findings), checks=(Check(DOSE, status, note, evidence),))


def _is_rounded_standard(dose: IvDose, kb: Knowledge) -> bool:
    """The dose is the standard dose for this weight after rounding (what the suggestion writes).

    At low weights 1 mg of rounding exceeds the tolerance (15 kg: 7.5 -> 8 mg = 0.53 mg/kg): the service must
    not warn about the dose it suggested itself.
    """
    if dose.dose_mg is None or dose.standard_mg is None:
        return False
    return abs(dose.dose_mg - dose.standard_mg) <= kb.number("iv.dose_rounding_mg") / 2 + EPSILON


def _too_fast(dose: IvDose, kb: Knowledge) -> bool:
    return (
        dose.mg_per_kg is not None
        and dose.minutes is not None
        and dose.mg_per_kg > kb.number("iv.fast_infusion_mg_per_kg") + EPSILON
        and dose.minutes < kb.number("iv.standard_infusion_minutes") - EPSILON
    )


def _too_often(order: MedicationOrder, kb: Knowledge) -> bool:
    return (
        order.frequency_per_week is not None
        and order.frequency_per_week > kb.number("iv.max_infusions_per_week") + EPSILON
    )


def infusion_too_fast(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``infusion-too-fast``: more than ``iv.fast_infusion_mg_per_kg`` in under the standard infusion time."""
    if not order.is_iv_ketamine or order.dose is None:
        return EMPTY
    dose = assess_iv(record, order, kb, now)
    if not _too_fast(dose, kb) or _pain_protocol(record, order, kb):
        return EMPTY
    facts = _facts(dose, kb, order)
    facts["limit"] = fmt(kb.number("iv.fast_infusion_mg_per_kg"))
    finding = Finding("infusion-too-fast", Indicator.WARNING, facts, _problem_lines(order), _evidence(dose))
    return RuleOutcome(findings=(finding,))


def frequency_above_protocol(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``frequency-above-protocol``: more than ``iv.max_infusions_per_week`` infusions per week ordered."""
    if not order.is_iv_ketamine or not _too_often(order, kb) or _pain_protocol(record, order, kb):
        return EMPTY
    assert order.frequency_per_week is not None
    facts = {"per_week": fmt(order.frequency_per_week), "limit": fmt(kb.number("iv.max_infusions_per_week"))}
    return RuleOutcome(findings=(Finding("frequency-above-protocol", Indicator.WARNING, facts),))


def _deviates(dose: IvDose, order: MedicationOrder, kb: Knowledge) -> list[str]:
    """Why the order is not the standard dose over the standard time (empty: it is)."""
    reasons: list[str] = []
    standard = kb.number("iv.standard_mg_per_kg")
    tolerance = standard * kb.number("iv.standard_tolerance_pct") / 100
    minutes = kb.number("iv.standard_infusion_minutes")
    if dose.mg_per_kg is not None and dose.dose_mg is not None and dose.standard_mg is not None:
        off_band = abs(dose.mg_per_kg - standard) > tolerance + EPSILON
        # the rewritten dose is exactly standard_mg: never suggest it again (no alert loop, even at low weights
        # where 1 mg rounding moves the mg/kg dose outside the tolerance)
        if off_band and not _is_rounded_standard(dose, kb):
            reasons.append(f"dose {fmt(dose.mg_per_kg)} mg/kg")
    if dose.minutes is None:
        if order.stage is OrderStage.SIGN:
            reasons.append("infusion time not given")
    elif dose.minutes < minutes - EPSILON:
        reasons.append(f"infused over {fmt(dose.minutes)} min")
    return reasons


def dose_standard_suggestion(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``dose-standard-suggestion``: rewrite to ``iv.standard_mg_per_kg`` over the standard time.

    Variant ``default`` (info) when the dose or the time deviates; ``unreadable`` / ``unreadable-no-weight``
    (warning) on order-sign when the order carries no dose the service can read.
    """
    if not order.is_iv_ketamine:
        return EMPTY
    dose = assess_iv(record, order, kb, now)
    if order.dose is not None and _pain_protocol(record, order, kb):
        return EMPTY
    facts = _facts(dose, kb, order)
    minutes = kb.number("iv.standard_infusion_minutes")
    rewrite = (RewriteDose(dose.standard_mg, minutes),) if dose.standard_mg is not None else ()
    if order.dose is None:
        if order.stage is OrderStage.SELECT:
            return EMPTY
        problems = "; ".join(order.problems) if order.problems else "no dose was entered"
        facts["problem"] = clip(problems, 55)
        variant = "unreadable" if rewrite else "unreadable-no-weight"
        finding = Finding(
            "dose-standard-suggestion",
            Indicator.WARNING,
            facts,
            _problem_lines(order) or ("Order: no dose was entered.",),
            _evidence(dose),
            rewrite,
            variant=variant,
        )
        return RuleOutcome(findings=(finding,))
    if not rewrite:
        return EMPTY
    reasons = _deviates(dose, order, kb)
    if not reasons:
        return EMPTY
    facts["deviation"] = " and ".join(reasons)
    finding = Finding(
        "dose-standard-suggestion", Indicator.INFO, facts, _problem_lines(order), _evidence(dose), rewrite
    )
    return RuleOutcome(findings=(finding,))


RULES: tuple[Rule, ...] = (
    weight_undocumented,
    dose_bands,
    infusion_too_fast,
    frequency_above_protocol,
    dose_standard_suggestion,
)
