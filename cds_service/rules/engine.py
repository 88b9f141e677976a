"""Rule sets: which rules a service runs on what it evaluates, and how their outcomes become one evaluation.

A ``RuleSet`` is data on a service's descriptor (``hooks.catalog``): its rules (pure functions of the record,
what is evaluated, the knowledge base and now), which subjects it judges at all, and how the outcomes of its
rules are concluded. ``ORDER_RULES`` is the rule set of the order services: every rule on one ketamine or
esketamine order, findings ordered summary first, then by urgency; what the rules could not check for lack of
data (``RuleOutcome.missing``) becomes the one ``pre-dose-data-missing`` card (``rules/pre_dose.py``); the
checklist lines of every rule become the summary. An order outside the service's scope (clinical-rules.md §0)
gets nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

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
from cds_service.rules.findings import Check, Finding, MissingItem, OrderRule, Rule, RuleOutcome

# Sections 2 and 3 of clinical-rules.md (bipolar disorder, contraindications and precautions): the order rules
# whose critical findings also keep patient-view from calling a patient a TRD candidate (``rules/patient_view.py``).
SAFETY_RULES: tuple[OrderRule, ...] = (
    *bipolar.RULES,
    *contraindications.RULES,
    *pregnancy.RULES,
    *hypersensitivity.RULES,
    *drug_interaction.RULES,
    *minor_patient.RULES,
    *genitourinary.RULES,
    *lactation.RULES,
)

# Order here is the order of cards of equal urgency, and of lines in the summary checklist.
RULES: tuple[OrderRule, ...] = (
    *indication.RULES,
    *trd.RULES,
    *severity.RULES,
    *SAFETY_RULES,
    *dose_iv.RULES,
    *dose_esketamine.RULES,
    *course_review.RULES,
    *indication_evidence.RULES,
)


@dataclass(frozen=True)
class Evaluation:
    """All findings for one order; ``findings[0]`` is the eligibility summary, unless the order is out of scope
    (then there are none at all)."""

    findings: tuple[Finding, ...]
    checks: tuple[Check, ...]
    missing: tuple[MissingItem, ...] = ()


S = TypeVar("S")
# (record, what was evaluated, knowledge, now, the outcome of each rule in order) -> the evaluation
Conclusion = Callable[[PatientRecord, S, Knowledge, datetime, Sequence[RuleOutcome]], Evaluation]


@dataclass(frozen=True)
class RuleSet(Generic[S]):
    """The rules a service runs on each subject (what it evaluates), and how their outcomes are concluded.

    ``judges``: whether a subject is judged at all (an order outside the service's scope gets no cards, not
    even the summary). ``conclude`` turns the outcomes of ``rules``, in order, into the evaluation.
    """

    name: str
    rules: tuple[Rule[S], ...]
    conclude: Conclusion[S]
    judges: Callable[[S, Knowledge], bool] = lambda subject, kb: True

    def evaluate(self, record: PatientRecord, subject: S, kb: Knowledge, now: datetime) -> Evaluation:
        """Every rule on ``subject``; pure."""
        if not self.judges(subject, kb):
            return Evaluation(findings=(), checks=())
        return self.conclude(record, subject, kb, now, [rule(record, subject, kb, now) for rule in self.rules])


def _conclude_order(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime, outcomes: Sequence[RuleOutcome]
) -> Evaluation:
    """Missing data gathered into one card, findings by urgency, the eligibility summary first."""
    findings = [finding for outcome in outcomes for finding in outcome.findings]
    checks = tuple(check for outcome in outcomes for check in outcome.checks)
    items = pre_dose.unique([item for outcome in outcomes for item in outcome.missing])
    gathered = pre_dose.pre_dose_finding(items)
    if gathered is not None:
        findings.append(gathered)
    findings.sort(key=lambda f: -f.indicator.urgency)
    head = summary.summarise(record, order, kb, now, checks, tuple(findings), items)
    return Evaluation(findings=(head, *findings), checks=checks, missing=items)


def _in_scope(order: MedicationOrder, kb: Knowledge) -> bool:
    return not indication.out_of_scope(order, kb)


ORDER_RULES: RuleSet[MedicationOrder] = RuleSet("ketamine-order", RULES, _conclude_order, judges=_in_scope)


def evaluate(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> Evaluation:
    """Every rule of the order services on one order (``ORDER_RULES``)."""
    return ORDER_RULES.evaluate(record, order, kb, now)
