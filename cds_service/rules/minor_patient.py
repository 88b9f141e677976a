"""Age (clinical-rules.md §3 ``minor-patient``): under ``minor.adult_age`` on the date of the first planned
administration (the order's timing bounds start) or, when the order gives none, today. A partial birthDate
counts from its latest possible day; no birthDate is a checklist line that says so.
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import PatientRecord
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import data_problem, day

CRITERION = "Age"
_READS = (kinds.PATIENT,)


def minor_patient_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    planned = order.first_planned is not None and order.first_planned > now
    first = order.first_planned if planned and order.first_planned is not None else now
    age = record.patient.age_at_least(first.date())
    if age is None:
        problem = data_problem(record, kinds.PATIENT)
        note = "date of birth not recorded" if not problem else f"date of birth could not be obtained ({problem})"
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.UNDOCUMENTED, note, reads=_READS),))
    adult = kb.number("minor.adult_age")
    when = "on the first planned dose" if planned else "today"
    if age >= adult:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, f"{age} years {when}", reads=_READS),))
    facts = {"age": str(age), "date": day(first), "adult": fmt(adult), "drug": order.drug.value}
    card = Finding("minor-patient", Indicator.WARNING, facts, variant="default")
    note = f"{age} years {when} ({day(first)}): under {fmt(adult)}"
    return RuleOutcome(findings=(card,), checks=(Check(CRITERION, CheckStatus.NOT_MET, note, reads=_READS),))


RULES: tuple[OrderRule, ...] = (minor_patient_rule,)
