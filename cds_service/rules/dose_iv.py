"""Section 4 of clinical-rules.md: dose and administration of IV ketamine.

Depression protocols (every indication but chronic pain): bands on the mg/kg dose (``iv.*`` thresholds):
below the low range -> ``dose-below-range``; above the standard dose plus ``iv.standard_tolerance_pct`` ->
``dose-above-standard`` (an *info* card, without a rewrite, up to ``iv.nonresponder_max_mg_per_kg`` when the record
shows a non-response at the standard dose); at or above the anaesthetic dose -> ``dose-anesthetic-range``
(critical). Then the infusion time (``infusion-too-fast``) and the infusions per week
(``frequency-above-protocol``).

Chronic-pain orders are checked by rate instead (their protocols are multi-hour infusions): a bolus of
``iv.bolus_mg_per_kg`` or more over less than ``iv.bolus_minutes`` is ``dose-anesthetic-range``; a rate above
``iv.pain_max_mg_per_kg_per_h`` is ``dose-above-standard``. No rewrite for pain orders.

The rewrite suggestion rides on the card that found the deviation — the most severe, and among equals the dose,
then the infusion time, then the frequency — and rewrites the order to the standard dose over the standard time
and, when the frequency deviates, to twice weekly. It needs a plausible weight (``dosing.dosing_weight``);
otherwise it is withheld and the card says why. A missing or implausible weight, and on order-sign an order
without a readable dose, are items of the ``pre-dose-data-missing`` card.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import DoseUnit, Drug, MedicationOrder, OrderStage
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Administration, Evidence, PatientRecord
from cds_service.rules.course import Course, courses
from cds_service.rules.dosing import EPSILON, IvDose, assess_iv, dosing_weight, stale_weight
from cds_service.rules.findings import (
    EMPTY,
    Check,
    CheckStatus,
    DeleteOrder,
    Finding,
    Indicator,
    MissingItem,
    OrderRule,
    RewriteDose,
    RuleOutcome,
)
from cds_service.rules.indication import (
    IndicationKind,
    anaesthetic_dose_without_reason,
    data_problem,
    day,
    determine_indication,
)

DOSE = "Dose"
WEIGHT = "Body weight"
DOSE_TOPICS = ("dose-anesthetic-range", "dose-above-standard", "dose-below-range")
# Which card carries the rewrite among cards of equal urgency: the dose, then the infusion time, then frequency.
_CARRIER_ORDER = (*DOSE_TOPICS, "infusion-too-fast", "frequency-above-protocol")


def _pain_protocol(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> bool:
    """A chronic-pain indication: checked by rate, not by the depression dose rules."""
    return determine_indication(record, order, kb, now).kind is IndicationKind.CHRONIC_PAIN


# ---------------------------------------------------------------- the weight


def body_weight(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """The checklist's weight line; a ``pre-dose-data-missing`` item when no plausible current weight exists."""
    if not order.is_iv_ketamine:
        return EMPTY
    weights = dosing_weight(record, kb, now)
    reads = (kinds.WEIGHT,)
    days = fmt(kb.number("weight.lookback_days"))
    if weights.plausible and weights.latest is not None:
        latest = weights.latest
        note = f"{fmt(round(latest.kg, 1))} kg on {day(latest.when)}"
        return RuleOutcome(checks=(Check(WEIGHT, CheckStatus.MET, note, (latest.evidence(),), reads),))
    problem = data_problem(record, kinds.WEIGHT)
    evidence: tuple[Evidence, ...] = weights.evidence()
    if weights.latest is not None:
        line = f"Body weight to re-measure: {weights.problem}"
        note = weights.problem
        if weights.reference is not None:
            note += "; the dose is checked with both weights (the more cautious figure)"
    else:
        line = f"No body weight in the last {days} days"
        note = f"no weight in the last {days} days"
        old = stale_weight(record, kb, now)
        if old is not None:
            line += f"; the latest, {fmt(round(old.kg, 1))} kg on {day(old.when)}, is too old"
            evidence = (old.evidence(),)
        if order.dose is not None and order.dose.unit is DoseUnit.MG_PER_KG:
            line += f": the {order.dose.as_written} order cannot be converted to mg"
    if problem:
        line += f" (weight could not be read completely: {problem})"
    line += "" if line.endswith(("mg", ")")) else ": needed for the mg/kg dose"
    item = MissingItem("body-weight", line, "body-weight", evidence, what="body weight")
    return RuleOutcome(checks=(Check(WEIGHT, CheckStatus.UNDOCUMENTED, note, evidence, reads),), missing=(item,))


# ---------------------------------------------------------------- non-response at the standard dose


def nonresponse_at_standard(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[Course, int] | None:
    """The most recent IV ketamine course with ``course.nonresponse_min_infusions`` or more infusions at or below
    the standard dose (+ tolerance) and no ``course.response_reduction_pct`` reduction from its baseline."""
    ceiling = kb.number("iv.standard_mg_per_kg") * (1 + kb.number("iv.standard_tolerance_pct") / 100) + EPSILON
    for course in reversed(courses(record, kb, now, Drug.KETAMINE.value)):
        at_standard = [a for a in course.administrations if (x := _given_mg_per_kg(a, record, kb)) is not None
                       and x <= ceiling]  # fmt: skip
        if len(at_standard) < kb.number("course.nonresponse_min_infusions") or course.baseline is None:
            continue
        after = course.scores_since_start(record)
        if not after or course.baseline.value <= 0:
            continue
        reduction = (course.baseline.value - after[0].value) / course.baseline.value * 100
        if reduction < kb.number("course.response_reduction_pct") - EPSILON:
            return course, len(at_standard)
    return None


def _given_mg_per_kg(admin: Administration, record: PatientRecord, kb: Knowledge) -> float | None:
    """An administration's dose in mg/kg: as recorded, or mg over the plausible weight nearest to it."""
    if admin.dose_mg_per_kg is not None:
        return admin.dose_mg_per_kg
    given = admin.when
    if admin.dose_mg is None or given is None:
        return None
    window = timedelta(days=kb.number("weight.lookback_days"))
    near = [(abs(w.when - given), w) for w in record.weights if w.when is not None and w.plausible and w.kg > 0]
    near = [(gap, w) for gap, w in near if gap <= window]
    if not near:
        return None
    return admin.dose_mg / min(near, key=lambda item: item[0])[1].kg


# ---------------------------------------------------------------- the dose, time and frequency


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
        facts["weight_kg"] = fmt(round(dose.weight.kg, 1))
    if dose.standard_mg is not None:
        facts["standard_mg"] = fmt(dose.standard_mg)
    if dose.minutes is not None:
        facts["minutes"] = fmt(dose.minutes)
    if dose.rate is not None:
        facts["rate"] = fmt(dose.rate)
    if order.frequency_per_week is not None:
        facts["per_week"] = fmt(order.frequency_per_week)
    return facts


def _evidence(dose: IvDose) -> tuple[Evidence, ...]:
    return dose.weights.evidence() if dose.weights.candidates else ()


def _problem_lines(order: MedicationOrder, dose: IvDose | None = None) -> tuple[str, ...]:
    lines = tuple(f"Order: {p}." for p in order.problems)
    if dose is not None and not dose.weights.plausible and dose.weight is not None and dose.weights.reference:
        lines += (f"The mg/kg dose is judged with {fmt(round(dose.weight.kg, 1))} kg, the more cautious of the latest "
                  "and the earlier plausible weight.",)  # fmt: skip
    return lines


def _is_rounded_standard(dose: IvDose, kb: Knowledge) -> bool:
    """The dose is the standard dose for this weight after rounding (what the suggestion writes).

    At low weights 1 mg of rounding exceeds the tolerance (15 kg: 7.5 -> 8 mg = 0.53 mg/kg): the service must
    not warn about the dose it suggested itself.
    """
    if dose.dose_mg is None or dose.standard_mg is None:
        return False
    return abs(dose.dose_mg - dose.standard_mg) <= kb.number("iv.dose_rounding_mg") / 2 + EPSILON


def iv_dose(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """Every section-4 dose finding of an IV ketamine order, the rewrite on the right card, the Dose line."""
    if order.drug is not Drug.KETAMINE:
        return EMPTY
    if not order.is_iv_ketamine:
        note = f"{order.route.value} route: these rules cover IV ketamine and intranasal esketamine only"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.NOT_APPLICABLE, note),))
    anaesthetic = anaesthetic_dose_without_reason(record, order, kb, now)
    if anaesthetic is not None:  # §0: the indication card asks for the reason; no dose card, no rewrite
        note = f"{anaesthetic} with no reason on the order: anaesthetic or sedation dosing? Not judged as a treatment"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.NOT_MET, note, reads=(kinds.WEIGHT,)),))
    dose = assess_iv(record, order, kb, now)
    pain = _pain_protocol(record, order, kb, now)
    if order.dose is None and (not pain or order.rate is None):
        return _no_dose(order, dose, kb)
    if pain:
        return _pain(order, dose, kb)
    findings = [*_bands(record, order, dose, kb, now), *_time_and_frequency(order, dose, kb)]
    findings = _with_rewrite(findings, order, dose, kb)
    return RuleOutcome(findings=tuple(findings), checks=(_dose_line(order, dose, findings, kb),))


def _no_dose(order: MedicationOrder, dose: IvDose, kb: Knowledge) -> RuleOutcome:
    """No readable dose: on order-select not entered yet; on order-sign an item of the data-needed card."""
    if order.stage is OrderStage.SELECT and not order.problems:
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.UNDOCUMENTED, "no dose entered yet"),))
    why = "; ".join(order.problems) if order.problems else "no dose on the order"
    standard = ""
    if dose.weight is not None and dose.standard_mg is not None:
        standard = (f"; the standard for {fmt(round(dose.weight.kg, 1))} kg is {fmt(dose.standard_mg)} mg over "
                    f"{fmt(kb.number('iv.standard_infusion_minutes'))} minutes")  # fmt: skip
    note = f"dose could not be read ({why}): the dose checks were not done{standard}"
    item = MissingItem("order-dose", f"A readable dose on this order: {why}; the anaesthetic-range and other dose "
                       f"checks were not done{standard}", None, what="a readable dose (mg or mg/kg)")  # fmt: skip
    return RuleOutcome(checks=(Check(DOSE, CheckStatus.UNDOCUMENTED, note, _evidence(dose)),), missing=(item,))


def _bands(
    record: PatientRecord, order: MedicationOrder, dose: IvDose, kb: Knowledge, now: datetime
) -> list[Finding]:
    x = dose.mg_per_kg
    if x is None:
        return []
    facts = _facts(dose, kb, order)
    detail = _problem_lines(order, dose)
    evidence = _evidence(dose)
    standard = kb.number("iv.standard_mg_per_kg")
    above = standard * (1 + kb.number("iv.standard_tolerance_pct") / 100)
    anesthetic = kb.number("iv.anesthetic_mg_per_kg")
    low = kb.number("iv.low_range_mg_per_kg")
    if x >= anesthetic - EPSILON:
        facts["limit"] = fmt(anesthetic)
        return [Finding("dose-anesthetic-range", Indicator.CRITICAL, facts, detail, evidence, (DeleteOrder(),))]
    if x > above + EPSILON and not _is_rounded_standard(dose, kb):
        facts["limit"] = fmt(above)
        if x <= kb.number("iv.nonresponder_max_mg_per_kg") + EPSILON:
            found = nonresponse_at_standard(record, kb, now)
            if found is not None:
                course, count = found
                facts.update(nonresponder_max=fmt(kb.number("iv.nonresponder_max_mg_per_kg")), count=str(count),
                             since=day(course.start))  # fmt: skip
                return [Finding("dose-above-standard", Indicator.INFO, facts, detail, evidence, variant="nonresponder")]
        return [Finding("dose-above-standard", Indicator.WARNING, facts, detail, evidence)]
    if x < low - EPSILON:
        facts["limit"] = fmt(low)
        return [Finding("dose-below-range", Indicator.WARNING, facts, detail, evidence)]
    return []


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


def _time_and_frequency(order: MedicationOrder, dose: IvDose, kb: Knowledge) -> list[Finding]:
    found: list[Finding] = []
    if _too_fast(dose, kb):
        facts = {**_facts(dose, kb, order), "limit": fmt(kb.number("iv.fast_infusion_mg_per_kg"))}
        found.append(Finding("infusion-too-fast", Indicator.WARNING, facts, _problem_lines(order), _evidence(dose)))
    if _too_often(order, kb):
        facts = {**_facts(dose, kb, order), "limit": fmt(kb.number("iv.max_infusions_per_week"))}
        found.append(Finding("frequency-above-protocol", Indicator.WARNING, facts))
    return found


def _with_rewrite(findings: list[Finding], order: MedicationOrder, dose: IvDose, kb: Knowledge) -> list[Finding]:
    """Put the one rewrite suggestion on the carrier card, or say on it why the rewrite is withheld."""
    deviations = [f for f in findings if f.indicator is not Indicator.INFO]
    if not deviations:
        return findings
    carrier = min(deviations, key=lambda f: (-f.indicator.urgency, _CARRIER_ORDER.index(f.topic)))
    if dose.standard_mg is None:
        reason = dose.weights.problem or "no body weight usable for the standard dose"
        changed = replace(carrier, detail=(f"No one-click correction: {reason}.", *carrier.detail))
    else:
        dose_mg = dose.standard_mg
        keep = [f for f in findings if f.topic == "dose-above-standard" and f.variant == "nonresponder"]
        if keep and dose.dose_mg is not None:
            dose_mg = dose.dose_mg  # the dose is acceptable after a non-response: fix only time and frequency
        per_week = round(kb.number("iv.standard_per_week")) if _too_often(order, kb) else None
        rewrite = RewriteDose(dose_mg, kb.number("iv.standard_infusion_minutes"), per_week)
        changed = replace(carrier, suggestions=(*carrier.suggestions, rewrite))
    return [changed if f is carrier else f for f in findings]


def _dose_line(order: MedicationOrder, dose: IvDose, findings: list[Finding], kb: Knowledge) -> Check:
    note = dose.describe()
    if order.frequency_per_week is not None:
        note += f", {fmt(order.frequency_per_week)} times a week"
    if order.problems:
        note += "; " + "; ".join(order.problems)
    judged = [f for f in findings if f.indicator is not Indicator.INFO]
    if dose.mg_per_kg is None:
        status = CheckStatus.UNDOCUMENTED
        note += ": the mg/kg dose could not be checked"
    elif judged:
        status = CheckStatus.NOT_MET
        note += ": " + ", ".join(_what(f) for f in judged)
    else:
        status = CheckStatus.MET
        if dose.minutes is None and order.stage is OrderStage.SIGN:
            status = CheckStatus.UNDOCUMENTED
            note += f": give it over {fmt(kb.number('iv.standard_infusion_minutes'))} minutes"
        elif findings:
            note += ": within the range after a documented non-response"
    return Check(DOSE, status, note, _evidence(dose), (kinds.WEIGHT,))


def _what(finding: Finding) -> str:
    return {
        "dose-anesthetic-range": "anaesthetic range",
        "dose-above-standard": "above the standard dose",
        "dose-below-range": "below the studied range",
        "infusion-too-fast": "infused too fast",
        "frequency-above-protocol": "more often than the protocol",
    }.get(finding.topic, finding.topic)


# ---------------------------------------------------------------- chronic pain: by rate


def _pain(order: MedicationOrder, dose: IvDose, kb: Knowledge) -> RuleOutcome:
    """Chronic-pain orders: a bolus at anaesthetic dose, or a rate above the consensus protocols."""
    facts = _facts(dose, kb, order)
    evidence = _evidence(dose)
    detail = _problem_lines(order)
    bolus_dose, bolus_minutes = kb.number("iv.bolus_mg_per_kg"), kb.number("iv.bolus_minutes")
    max_rate = kb.number("iv.pain_max_mg_per_kg_per_h")
    findings: list[Finding] = []
    if (dose.mg_per_kg is not None and dose.minutes is not None and dose.mg_per_kg >= bolus_dose - EPSILON
            and dose.minutes < bolus_minutes - EPSILON):  # fmt: skip
        facts.update(limit=fmt(bolus_dose), bolus_minutes=fmt(bolus_minutes))
        findings.append(Finding("dose-anesthetic-range", Indicator.CRITICAL, facts, detail, evidence, (DeleteOrder(),),
                                variant="pain-bolus"))  # fmt: skip
    elif dose.rate is not None and dose.rate > max_rate + EPSILON:
        facts.update(limit=fmt(max_rate))
        findings.append(Finding("dose-above-standard", Indicator.WARNING, facts, detail, evidence, variant="pain-rate"))
    rate = f"{fmt(round(dose.rate, 3))} mg/kg/h" if dose.rate is not None else None
    note = dose.describe() + (f", {rate}" if rate else "")
    if findings:
        status = CheckStatus.NOT_MET
        note += ": " + _what(findings[0])
    elif rate is None:
        status = CheckStatus.UNDOCUMENTED
        note += ": no rate or infusion time, the chronic-pain rate could not be checked"
    else:
        status = CheckStatus.MET
        note += f": chronic pain, checked by rate (up to {fmt(max_rate)} mg/kg/h)"
    return RuleOutcome(findings=tuple(findings), checks=(Check(DOSE, status, note, evidence, (kinds.WEIGHT,)),))


RULES: tuple[OrderRule, ...] = (body_weight, iv_dose)
