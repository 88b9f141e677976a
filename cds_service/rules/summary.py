"""The eligibility-summary card (clinical-rules.md §8): being implemented."""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import PatientRecord
from cds_service.rules.findings import Check, Finding, Indicator


def summarise(
    record: PatientRecord,
    order: MedicationOrder,
    kb: Knowledge,
    now: datetime,
    checks: tuple[Check, ...],
    findings: tuple[Finding, ...],
) -> Finding:
    return Finding(topic="eligibility-summary", indicator=Indicator.INFO)
