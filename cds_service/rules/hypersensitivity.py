"""Hypersensitivity to ketamine or esketamine (clinical-rules.md §3 ``hypersensitivity``).

An AllergyIntolerance to either drug (the record keeps only those, recognised by code or name) counts unless it
is refuted or entered in error, or its clinicalStatus is resolved or inactive:

| reactions recorded                                      | ``type`` allergy or absent | ``type`` intolerance |
|---------------------------------------------------------|----------------------------|----------------------|
| any immune-mediated one (anaphylaxis, urticaria, ...)   | critical                   | critical             |
| every one a known effect (dissociation, nausea, ...)    | warning                    | warning              |
| none, or others                                         | critical                   | warning              |

When no allergy list could be read, the checklist says "allergies not checked".
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import AllergyFact, PatientRecord
from cds_service.rules.contraindications import finding
from cds_service.rules.findings import Check, CheckStatus, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import compose_names, data_problem

CRITERION = "Ketamine or esketamine allergy"
_IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_INACTIVE = frozenset({"resolved", "inactive"})
_READS = (kinds.ALLERGIES,)


def counts(allergy: AllergyFact) -> bool:
    return allergy.verification_status not in _IGNORED_VERIFICATION and allergy.clinical_status not in _INACTIVE


def severity(allergy: AllergyFact, kb: Knowledge) -> tuple[Indicator, str]:
    """(indicator, variant) of one allergy, by its reactions and its type."""
    immune, known = kb.valuesets.get("reaction-immune"), kb.valuesets.get("reaction-known-effect")
    reactions = [r.lower() for r in allergy.reactions]
    if immune is not None and any(immune.text_fits(r) for r in reactions):
        return Indicator.CRITICAL, "immune"
    if allergy.type == "intolerance":
        return Indicator.WARNING, "intolerance"
    if reactions and known is not None and all(known.text_fits(r) for r in reactions):
        return Indicator.WARNING, "known-effect"
    return Indicator.CRITICAL, "allergy"


def hypersensitivity_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    found = [a for a in record.allergies if counts(a)]
    if not found:
        problem = data_problem(record, kinds.ALLERGIES)
        if problem:
            note = f"allergies not checked: the allergy list could not be read ({problem})"
            return RuleOutcome(checks=(Check(CRITERION, CheckStatus.UNDOCUMENTED, note, reads=_READS),))
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, "", reads=_READS),))
    judged = [(a, *severity(a, kb)) for a in found]
    indicator, variant = max(((i, v) for _, i, v in judged), key=lambda iv: iv[0] is Indicator.CRITICAL)
    shown = [a for a, i, _ in judged if i is indicator]
    facts = {
        "substance": compose_names([a.substance for a in shown], 40, "ketamine"),
        "reaction": compose_names([r for a in shown for r in a.reactions], 40, "a reaction")
        if any(a.reactions for a in shown)
        else "",
        "drug": order.drug.value,
    }
    evidence = tuple(a.evidence() for a, _, _ in judged)
    card = finding("hypersensitivity", indicator, facts, evidence, variant=variant)
    note = "; ".join(e.value for e in evidence)
    return RuleOutcome((card,), (Check(CRITERION, CheckStatus.NOT_MET, note, evidence, _READS),))


RULES: tuple[OrderRule, ...] = (hypersensitivity_rule,)
