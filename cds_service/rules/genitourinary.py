"""Bladder toxicity (clinical-rules.md §3 ``genitourinary-toxicity``).

Warning: an active interstitial or ulcerative cystitis together with repeated ketamine (a course under way, or
at least ``genitourinary.min_administrations`` administrations on record); or any Condition whose text names
ketamine cystitis or uropathy, whatever the ketamine history (``ketamine-misuse-history`` also looks at it).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import PatientRecord
from cds_service.rules.contraindications import evidence_of, names_for_summary
from cds_service.rules.course import courses_under_way
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import condition_names, conditions_in

CRITERION = "Bladder toxicity"
_READS = (kinds.CONDITIONS, kinds.ADMINISTRATIONS)


def genitourinary_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    named = conditions_in(record, "ketamine-uropathy", active_only=False)
    cystitis = tuple(c for c in conditions_in(record, "interstitial-cystitis") if c not in named)
    given = [a for a in record.administrations if a.when is None or a.when <= now]
    minimum = kb.number("genitourinary.min_administrations")
    under_way = bool(courses_under_way(record, kb, now))
    repeated = under_way or len(given) >= minimum
    if named:
        shown = (*named, *cystitis)
        variant, why = "named", f"{condition_names(named)}"
    elif cystitis and repeated:
        shown = cystitis
        exposure = "a course under way" if under_way else f"{len(given)} administrations on record"
        variant, why = "cystitis", f"{condition_names(cystitis)} with {exposure}"
    else:
        note = (
            f"{condition_names(cystitis)}; ketamine not repeated (fewer than {fmt(minimum)} administrations)"
            if cystitis
            else ""
        )
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, note, evidence_of(cystitis), _READS),))
    facts = {"condition": names_for_summary(shown, "cystitis"), "count": str(len(given)), "drug": order.drug.value}
    evidence = (*evidence_of(shown), *(a.evidence() for a in given[:3]))
    card = Finding("genitourinary-toxicity", Indicator.WARNING, facts, (), evidence, variant=variant)
    return RuleOutcome(findings=(card,), checks=(Check(CRITERION, CheckStatus.NOT_MET, why, evidence, _READS),))


RULES: tuple[OrderRule, ...] = (genitourinary_rule,)
