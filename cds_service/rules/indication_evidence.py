"""Section 7 of clinical-rules.md: evidence cards for the order's indication.

Driven by ``determine_indication`` (order reason first, else the problem list): chronic pain (CRPS and
spinal cord injury pain: info; other pain syndromes: warning), PTSD, and the suicidal-ideation indication of
§0 (the order's reason, or an active entry dated within ``indication.suicidal_ideation_days``; older entries
are a checklist line of ``indication_rule``).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record.model import PatientRecord
from cds_service.rules.findings import EMPTY, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import IndicationKind, PainKind, determine_indication, suicidal_ideation

_PAIN_VARIANTS = {
    PainKind.CRPS: ("crps", Indicator.INFO),
    PainKind.SPINAL_CORD_INJURY: ("sci", Indicator.INFO),
    PainKind.OTHER: ("default", Indicator.WARNING),
}


def chronic_pain_evidence(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``chronic-pain-evidence``: CRPS (grade B) and SCI pain (grade C) info; other pain (grade D) warning."""
    indication = determine_indication(record, order, kb, now)
    if indication.kind is not IndicationKind.CHRONIC_PAIN:
        return EMPTY
    variant, indicator = _PAIN_VARIANTS[indication.pain_kind or PainKind.OTHER]
    facts = {"indication": indication.label, "source": indication.source or "record"}
    detail: tuple[str, ...] = ()
    if order.is_iv_ketamine:
        ordered = f"The ordered dose ({order.dose.as_written})" if order.dose else "The order"
        detail = (
            f"{ordered} was checked by rate, **not against the depression dose bands** ("
            f"{fmt(kb.number('iv.standard_mg_per_kg'))} mg/kg over {fmt(kb.number('iv.standard_infusion_minutes'))}"
            " min), infusion time or weekly frequency: chronic-pain protocols run for hours (CRPS: 22 mg/h for 4 "
            "days, or 0.35 mg/kg/h over 4 hours daily for 10 days). A bolus of "
            f"{fmt(kb.number('iv.bolus_mg_per_kg'))} mg/kg or more over less than {fmt(kb.number('iv.bolus_minutes'))}"
            f" minutes, or a rate above {fmt(kb.number('iv.pain_max_mg_per_kg_per_h'))} mg/kg/h, gets a dose card.",
        )
    finding = Finding("chronic-pain-evidence", indicator, facts, detail, indication.evidence, variant=variant)
    return RuleOutcome(findings=(finding,))


def ptsd_evidence(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``ptsd-evidence``: the order is for PTSD."""
    indication = determine_indication(record, order, kb, now)
    if indication.kind is not IndicationKind.PTSD:
        return EMPTY
    facts = {"source": indication.source or "record"}
    return RuleOutcome(findings=(Finding("ptsd-evidence", Indicator.INFO, facts, (), indication.evidence),))


def suicidal_ideation_evidence(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``suicidal-ideation``: the suicidal-ideation indication holds (the order's reason, or an active entry
    dated within ``indication.suicidal_ideation_days``)."""
    ideation = suicidal_ideation(record, order, kb, now)
    if not ideation.current:
        return EMPTY
    source = "order reason" if ideation.source == "order" else "problem list"
    return RuleOutcome(
        findings=(Finding("suicidal-ideation", Indicator.INFO, {"source": source}, (), ideation.evidence),)
    )


RULES: tuple[OrderRule, ...] = (chronic_pain_evidence, ptsd_evidence, suicidal_ideation_evidence)
