"""Runs every rule on one order and orders the findings: summary first, then by urgency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import PatientRecord
from cds_service.rules import (
    bipolar,
    contraindications,
    course,
    dose_esketamine,
    dose_iv,
    drug_interaction,
    genitourinary,
    hypersensitivity,
    indication,
    indication_evidence,
    lactation,
    minor_patient,
    pregnancy,
    severity,
    summary,
    trd,
)
from cds_service.rules.findings import Check, Finding, Indicator, Rule

# Order here is the order of cards of equal urgency, and of lines in the summary checklist.
RULES: tuple[Rule, ...] = (
    *indication.RULES,
    *trd.RULES,
    *severity.RULES,
    *bipolar.RULES,
    *contraindications.RULES,
    *pregnancy.RULES,
    *hypersensitivity.RULES,
    *drug_interaction.RULES,
    *minor_patient.RULES,
    *genitourinary.RULES,
    *lactation.RULES,
    *dose_iv.RULES,
    *dose_esketamine.RULES,
    *course.RULES,
    *indication_evidence.RULES,
)

_DOSE_RULES: frozenset[Rule] = frozenset(dose_iv.RULES)
_URGENCY = {Indicator.CRITICAL: 0, Indicator.WARNING: 1, Indicator.INFO: 2}


@dataclass(frozen=True)
class Evaluation:
    """All findings for one order; ``findings[0]`` is the eligibility summary, unless the order is out of scope
    (then there are none at all)."""

    findings: tuple[Finding, ...]
    checks: tuple[Check, ...]


def evaluate(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> Evaluation:
    """Every rule on one order; an order outside the service's scope (clinical-rules.md §0) gets nothing."""
    if indication.out_of_scope(order, kb):
        return Evaluation(findings=(), checks=())
    findings: list[Finding] = []
    checks: list[Check] = []
    # an order with no reason at an anaesthetic-looking dose gets the indication card instead of dose cards (§0)
    skipped = _DOSE_RULES if indication.anaesthetic_dose_without_reason(record, order, kb, now) else frozenset()
    for rule in RULES:
        if rule in skipped:
            continue
        outcome = rule(record, order, kb, now)
        findings.extend(outcome.findings)
        checks.extend(outcome.checks)
    findings.sort(key=lambda f: _URGENCY[f.indicator])
    head = summary.summarise(record, order, kb, now, tuple(checks), tuple(findings))
    return Evaluation(findings=(head, *findings), checks=tuple(checks))
