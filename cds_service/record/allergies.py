"""AllergyIntolerance resources to ketamine or esketamine (clinical-rules.md §3 ``hypersensitivity``).

Only allergies whose substance is ketamine or esketamine are kept: by code (ingredient or any product of either
in the medication catalogue, in ``code`` or a reaction's ``substance``) or, failing that, by name (the
catalogue's whole-word name match, so "esketamine" is never "ketamine"). Entered-in-error entries are dropped
here; refuted and resolved ones are kept with their status for the rule to judge. The raw check is cheap
(codes and texts only); the resource is validated only when it names one of the two drugs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.record.dates import parse_fhir_datetime
from cds_service.record.fhirdata import codes_of, is_mapping, resource_id, status_code, texts_of
from cds_service.record.model import AllergyFact, Recognition

_DRUG_ROLES: Final = ("esketamine", "ketamine")  # esketamine first: a product of it is never "ketamine"


def ketamine_drug(resource: Mapping[str, Any], kb: Knowledge) -> tuple[str, Recognition] | None:
    """("ketamine" | "esketamine", how it was recognised) when the allergy's substance is one of them."""
    catalog = kb.medications
    concepts = [resource.get("code")]
    reactions = resource.get("reaction")
    for reaction in reactions if isinstance(reactions, list) else ():
        if is_mapping(reaction):
            concepts.append(reaction.get("substance"))
    for by_name in (False, True):
        keys: tuple[str, ...] = ()
        for concept in concepts:
            keys += (
                catalog.ingredients_for_text(texts_of(concept))
                if by_name
                else catalog.ingredients_for_codes(codes_of(concept))
            )
        for role in _DRUG_ROLES:
            if any(role in (catalog.ingredients[k].roles if k in catalog.ingredients else ()) for k in keys):
                return role, Recognition.NAME if by_name else Recognition.CODE
    return None


def allergy_fact(resource: Mapping[str, Any], drug: str, recognition: Recognition) -> AllergyFact:
    code = resource.get("code")
    shown = next(iter(texts_of(code)), None) or drug
    reactions: list[str] = []
    raw = resource.get("reaction")
    for reaction in raw if isinstance(raw, list) else ():
        if not is_mapping(reaction):
            continue
        manifestations = reaction.get("manifestation")
        for concept in manifestations if isinstance(manifestations, list) else ():
            reactions.extend(texts_of(concept)[:1])
        description = reaction.get("description")
        if isinstance(description, str) and description.strip():
            reactions.append(description.strip())
    kind = resource.get("type")
    return AllergyFact(
        resource_id=resource_id(resource),
        drug=drug,
        substance=shown,
        clinical_status=status_code(resource.get("clinicalStatus")),
        verification_status=status_code(resource.get("verificationStatus")),
        type=kind if isinstance(kind, str) else None,
        reactions=tuple(dict.fromkeys(reactions)),
        recorded=parse_fhir_datetime(resource.get("recordedDate"))
        or parse_fhir_datetime(resource.get("onsetDateTime")),
        recognition=recognition,
    )
