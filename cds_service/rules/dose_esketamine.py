"""Section 5 of clinical-rules.md: intranasal esketamine dose bands and the REMS reminder.

Bands on the mg per session (``esketamine.*`` thresholds): above ``max_dose_mg`` -> ``esketamine-dose-high``
(critical); below ``min_effective_mg`` -> ``esketamine-dose-low`` (warning), except exactly the labelled
``start_dose_mg`` for a patient aged ``elderly_age`` or more (info, variant ``elderly-start``).
A dose the service cannot read (or a mg/kg dose: esketamine is dosed per session) is never guessed: the
summary's Dose line says so, and on order-sign the REMS card (the one card every esketamine order gets)
becomes a warning, variant ``dose-unreadable``, naming the problem and saying the dose bands were not checked
(clinical-rules.md §9: missing data never passes silently).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import DoseUnit, Drug, MedicationOrder, OrderStage
from cds_service.order.units import fmt
from cds_service.record.model import PatientRecord
from cds_service.rules.dosing import EPSILON, clip
from cds_service.rules.findings import (
    EMPTY,
    Check,
    CheckStatus,
    DeleteOrder,
    Finding,
    Indicator,
    Rule,
    RuleOutcome,
)

DOSE = "Dose"


def esketamine_dose(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``esketamine-dose-low`` / ``esketamine-dose-high`` and the summary's Dose line."""
    if order.drug is not Drug.ESKETAMINE:
        return EMPTY
    if not order.is_intranasal_esketamine:
        note = f"route {order.route.value}: the intranasal esketamine dose rules do not apply"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.NOT_APPLICABLE, note),))
    unreadable = _unreadable(order)
    if unreadable is not None or order.dose is None:
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.UNDOCUMENTED, unreadable or "no dose on the order"),))

    mg = order.dose.value
    age = record.patient.age_on(now.date())
    start = kb.number("esketamine.start_dose_mg")
    low = kb.number("esketamine.min_effective_mg")
    high = kb.number("esketamine.max_dose_mg")
    elderly = kb.number("esketamine.elderly_age")
    facts = {
        "dose_mg": fmt(mg),
        "ordered": order.dose.as_written,
        "start_mg": fmt(start),
        "min_mg": fmt(low),
        "max_mg": fmt(high),
        "elderly_age": fmt(elderly),
        "age": str(age) if age is not None else "not recorded",
    }
    detail = tuple(f"Order: {p}." for p in order.problems)
    finding: Finding | None = None
    if mg > high + EPSILON:
        finding = Finding("esketamine-dose-high", Indicator.CRITICAL, facts, detail, (), (DeleteOrder(),))
    elif mg < low - EPSILON:
        if abs(mg - start) <= EPSILON and age is not None and age >= elderly:
            finding = Finding("esketamine-dose-low", Indicator.INFO, facts, detail, variant="elderly-start")
        else:
            if abs(mg - start) <= EPSILON and age is None:
                detail = (*detail, f"Age not recorded: the {fmt(start)} mg start for patients aged "
                          f"{fmt(elderly)} or over could not be confirmed.")
            finding = Finding("esketamine-dose-low", Indicator.WARNING, facts, detail)
    status = CheckStatus.MET if finding is None or finding.indicator is Indicator.INFO else CheckStatus.NOT_MET
    note = f"ordered {fmt(mg)} mg intranasal per session (labelled {fmt(low)}-{fmt(high)} mg"
    note += f"; {fmt(start)} mg start at age {fmt(elderly)} or over)"
    if order.frequency_per_week is not None:
        note += f"; {fmt(order.frequency_per_week)} per week"
    if order.problems:
        note += "; notes: " + "; ".join(order.problems)
    findings = (finding,) if finding is not None else ()
    return RuleOutcome(findings=findings, checks=(Check(DOSE, status, note),))


def _unreadable(order: MedicationOrder) -> str | None:
    """Why the order has no dose in mg per session (None: it has one)."""
    if order.dose is not None and order.dose.unit is DoseUnit.MG:
        return None
    notes = list(order.problems)
    if order.dose is not None and order.dose.unit is DoseUnit.MG_PER_KG:
        notes.append(f"'{order.dose.as_written}' is weight-based: esketamine is dosed in mg per session")
    if order.stage is OrderStage.SELECT and not notes:
        return "no dose entered yet"
    return "dose could not be read: " + "; ".join(notes) if notes else "no dose on the order"


def esketamine_rems(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``esketamine-rems``: every esketamine order (also on order-select); a warning (variant
    ``dose-unreadable``) on order-sign when the intranasal dose cannot be read."""
    if order.drug is not Drug.ESKETAMINE:
        return EMPTY
    unreadable = _unreadable(order) if order.is_intranasal_esketamine else None
    if unreadable is None or order.stage is not OrderStage.SIGN:
        return RuleOutcome(findings=(Finding("esketamine-rems", Indicator.INFO),))
    facts = {
        "problem": clip(unreadable.removeprefix("dose could not be read: "), 55),
        "min_mg": fmt(kb.number("esketamine.min_effective_mg")),
        "max_mg": fmt(kb.number("esketamine.max_dose_mg")),
    }
    detail = (f"Order: {unreadable[0].upper()}{unreadable[1:]}.",)
    finding = Finding("esketamine-rems", Indicator.WARNING, facts, detail, variant="dose-unreadable")
    return RuleOutcome(findings=(finding,))


RULES: tuple[Rule, ...] = (esketamine_dose, esketamine_rems)
