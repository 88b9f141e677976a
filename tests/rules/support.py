"""Running a group of rules directly (no engine, no cards): the dose, esketamine, course and evidence rules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import PatientRecord
from cds_service.rules import course_review, dose_esketamine, dose_iv, indication_evidence
from cds_service.rules.findings import Check, Finding, MissingItem
from tests.clock import NOW

MY_RULES = (*dose_iv.RULES, *dose_esketamine.RULES, *course_review.RULES, *indication_evidence.RULES)


def run(rec: PatientRecord, order: MedicationOrder, kb: Knowledge) -> tuple[list[Finding], list[Check]]:
    """Run the section 4-7 rules; every finding's card text must render under 140 characters."""
    findings, checks, _missing = run_all(rec, order, kb)
    return findings, checks


def run_all(
    rec: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime = NOW
) -> tuple[list[Finding], list[Check], list[MissingItem]]:
    """``run`` with the items for the pre-dose-data-missing card."""
    findings: list[Finding] = []
    checks: list[Check] = []
    missing: list[MissingItem] = []
    for rule in MY_RULES:
        outcome = rule(rec, order, kb, now)
        findings.extend(outcome.findings)
        checks.extend(outcome.checks)
        missing.extend(outcome.missing)
    for f in findings:
        render_summary(f, kb)
    return findings, checks, missing


def check(checks: Iterable[Check], criterion: str) -> Check:
    (found,) = [c for c in checks if c.criterion == criterion]
    return found


def render_summary(finding: Finding, kb: Knowledge) -> str:
    text = kb.topics[finding.topic].variants[finding.variant]
    assert text.indicator == finding.indicator.value, (finding.topic, finding.variant)
    summary = text.summary.format_map(dict(finding.facts))
    assert len(summary) < 140, summary
    text.rationale.format_map(dict(finding.facts))
    return summary


def topics(findings: Iterable[Finding]) -> set[str]:
    return {f.topic for f in findings}


def by_topic(findings: Iterable[Finding], topic: str) -> Finding:
    hits = [f for f in findings if f.topic == topic]
    assert len(hits) == 1, (topic, hits)
    return hits[0]
