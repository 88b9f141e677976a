"""Breastfeeding (clinical-rules.md §3 ``lactation``): an active Condition (Z39.1, or words that say so) or an
Observation that says the patient is breastfeeding, dated within ``lactation.lookback_days`` (warning). An
undated Condition counts while it is active (an entry with no date cannot prove it is over); an undated
Observation cannot prove recency and is a checklist line.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import Evidence, PatientRecord
from cds_service.rules.contraindications import dated_within
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import conditions_in, day

CRITERION = "Breastfeeding"
_READS = (kinds.CONDITIONS, kinds.LACTATION)


def lactation_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    days = kb.number("lactation.lookback_days")
    since = now - timedelta(days=days)
    entries = [c for c in conditions_in(record, "lactation") if c.when is None or dated_within(c, days, now)]
    notes = [o for o in record.lactation if o.when is not None and since <= o.when <= now]
    evidence: tuple[Evidence, ...] = (*(c.evidence() for c in entries), *(o.evidence() for o in notes))
    if not evidence:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, "", reads=_READS),))
    dates = [t for t in (*(c.when for c in entries), *(o.when for o in notes)) if t is not None]
    latest = max(dates) if dates else None
    facts = {"date": day(latest), "drug": order.drug.value}
    card = Finding("lactation", Indicator.WARNING, facts, (), evidence, variant="default" if latest else "undated")
    note = "; ".join(e.value + (f" on {day(e.when)}" if e.when else " (undated)") for e in evidence)
    return RuleOutcome(findings=(card,), checks=(Check(CRITERION, CheckStatus.NOT_MET, note, evidence, _READS),))


RULES: tuple[OrderRule, ...] = (lactation_rule,)
