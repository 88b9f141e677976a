"""Section 7 of clinical-rules.md: evidence cards for the order's indication.

Driven by ``determine_indication`` (order reason first, else the problem list): chronic pain (CRPS and
spinal cord injury pain: info; other pain syndromes: warning), PTSD, and active suicidal ideation (from the
problem list or the order's reason).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record.model import Evidence, PatientRecord
from cds_service.rules.findings import EMPTY, Finding, Indicator, Rule, RuleOutcome
from cds_service.rules.indication import IndicationKind, PainKind, conditions_in, determine_indication

_PAIN_VARIANTS = {
    PainKind.CRPS: ("crps", Indicator.INFO),
    PainKind.SPINAL_CORD_INJURY: ("sci", Indicator.INFO),
    PainKind.OTHER: ("default", Indicator.WARNING),
}


def chronic_pain_evidence(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``chronic-pain-evidence``: CRPS (grade B) and SCI pain (grade C) info; other pain (grade D) warning."""
    indication = determine_indication(record, order, kb)
    if indication.kind is not IndicationKind.CHRONIC_PAIN:
        return EMPTY
    variant, indicator = _PAIN_VARIANTS[indication.pain_kind or PainKind.OTHER]
    facts = {"indication": indication.label, "source": indication.source or "record"}
    detail: tuple[str, ...] = ()
    if order.is_iv_ketamine:
        ordered = f"The ordered dose ({order.dose.as_written})" if order.dose else "The dose"
        detail = (
            f"{ordered} was **not judged against the depression dose bands** ("
            f"{fmt(kb.number('iv.standard_mg_per_kg'))} mg/kg over {fmt(kb.number('iv.standard_infusion_minutes'))}"
            f" min; anaesthetic range from {fmt(kb.number('iv.anesthetic_mg_per_kg'))} mg/kg), nor the infusion "
            "time or weekly frequency: chronic-pain protocols differ (CRPS: 22 mg/h for 4 days, or 0.35 mg/kg/h "
            "over 4 hours daily for 10 days; seed 004). Check the dose against your pain protocol.",
        )
    finding = Finding("chronic-pain-evidence", indicator, facts, detail, indication.evidence, variant=variant)
    return RuleOutcome(findings=(finding,))


def ptsd_evidence(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``ptsd-evidence``: the order is for PTSD."""
    indication = determine_indication(record, order, kb)
    if indication.kind is not IndicationKind.PTSD:
        return EMPTY
    facts = {"source": indication.source or "record"}
    return RuleOutcome(findings=(Finding("ptsd-evidence", Indicator.INFO, facts, (), indication.evidence),))


def suicidal_ideation(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``suicidal-ideation``: an active suicidal-ideation condition, or the order's reason names it."""
    evidence: list[Evidence] = [c.evidence() for c in conditions_in(record, "suicidal-ideation")]
    sources: list[str] = ["problem list"] if evidence else []
    valueset = kb.valuesets.get("suicidal-ideation")
    if valueset is not None and (
        valueset.matches_code(order.reason_codes) or valueset.matches_text([order.reason_text])
    ):
        sources.insert(0, "order reason")
        reason = order.reason_text or next((c.display or c.code for c in order.reason_codes), "suicidal ideation")
        evidence.insert(0, Evidence("MedicationRequest", _rid(order), None, f"reason: {reason}"))
    if not sources:
        return EMPTY
    facts = {"source": " and ".join(sources)}
    return RuleOutcome(findings=(Finding("suicidal-ideation", Indicator.INFO, facts, (), tuple(evidence)),))


def _rid(order: MedicationOrder) -> str | None:
    return order.reference.split("/", 1)[1] if order.reference else None


RULES: tuple[Rule, ...] = (chronic_pain_evidence, ptsd_evidence, suicidal_ideation)
