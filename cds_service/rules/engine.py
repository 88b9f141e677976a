"""Runs every rule on one order and orders the findings: summary first, then by urgency.

What the rules could not check for lack of data (``RuleOutcome.missing``) becomes the one
``pre-dose-data-missing`` card (``rules/pre_dose.py``); the checklist lines of every rule become the summary.
An order outside the service's scope (clinical-rules.md §0) gets nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import PatientRecord
from cds_service.rules import (
    bipolar,
    contraindications,
    course_review,
    dose_esketamine,
    dose_iv,
    drug_interaction,
    genitourinary,
    hypersensitivity,
    indication,
    indication_evidence,
    lactation,
    minor_patient,
    pre_dose,
    pregnancy,
    severity,
    summary,
    trd,
)
from cds_service.rules.findings import Check, Finding, Indicator, MissingItem, Rule

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
    *course_review.RULES,
    *indication_evidence.RULES,
)

_URGENCY = {Indicator.CRITICAL: 0, Indicator.WARNING: 1, Indicator.INFO: 2}


@dataclass(frozen=True)
class Evaluation:
    """All findings for one order; ``findings[0]`` is the eligibility summary, unless the order is out of scope
    (then there are none at all)."""

    findings: tuple[Finding, ...]
    checks: tuple[Check, ...]
    missing: tuple[MissingItem, ...] = ()


def evaluate(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> Evaluation:
    """Every rule on one order; an order outside the service's scope (clinical-rules.md §0) gets nothing."""
    if indication.out_of_scope(order, kb):
        return Evaluation(findings=(), checks=())
    findings: list[Finding] = []
    checks: list[Check] = []
    missing: list[MissingItem] = []
    for rule in RULES:
        outcome = rule(record, order, kb, now)
        findings.extend(outcome.findings)
        checks.extend(outcome.checks)
        missing.extend(outcome.missing)
    items = pre_dose.unique(missing)
    gathered = pre_dose.pre_dose_finding(items)
    if gathered is not None:
        findings.append(gathered)
    findings.sort(key=lambda f: _URGENCY[f.indicator])
    head = summary.summarise(record, order, kb, now, tuple(checks), tuple(findings), items)
    return Evaluation(findings=(head, *findings), checks=tuple(checks), missing=items)
