"""Which ingredients a medication[x] element names (codes, product strength, or words), as far as the
catalogue knows: one resolver per record build, each Medication resolved once."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cds_service.knowledge.model import Knowledge
from cds_service.record.fhirdata import (
    codes_of,
    content_key,
    texts_of,
)
from cds_service.record.model import Code, Recognition
from cds_service.terminology.codes import NDC
from cds_service.terminology.ndc import normalize_ndc

_STRENGTH_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b(?!\s*/)", re.IGNORECASE)


@dataclass(frozen=True)
class ResolvedMedication:
    """What a medication[x] element names, as far as the catalogue knows."""

    ingredients: tuple[str, ...]
    recognition: Recognition
    strength_mg: Mapping[str, float] = field(default_factory=dict)  # per dosage unit, per ingredient


class MedicationResolver:
    """Resolves ``medication[x]`` to catalogue ingredients; remembers references it could not resolve.

    One per record build: what a medication concept resolves to depends on its content alone, so a
    concept repeated across the history (every refill of the same drug) is resolved once.
    """

    def __init__(
        self,
        kb: Knowledge,
        medications: Mapping[str, Mapping[str, Any]],
        accept_medication: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
    ) -> None:
        self._kb = kb
        self._medications = medications  # standalone Medication resources by id
        self._accept = accept_medication  # a standalone Medication as validated (repaired), None when invalid
        self._resolved: dict[bytes, ResolvedMedication | None] = {}  # by content_key of the concepts
        self.unresolved_references = 0

    def resolve(self, resource: Mapping[str, Any]) -> ResolvedMedication | None:
        """The ingredients of the resource's medication, or None when it is not a catalogue medication."""
        concept = resource.get("medicationCodeableConcept")
        concepts: list[object] = [concept] if concept is not None else []
        reference = resource.get("medicationReference")
        if not concepts and isinstance(reference, Mapping):
            medication = self._dereference(resource, reference)
            if medication is not None:
                concepts.append(medication.get("code"))
                for item in medication.get("ingredient") or ():
                    if isinstance(item, Mapping) and item.get("itemCodeableConcept") is not None:
                        concepts.append(item["itemCodeableConcept"])
            display = reference.get("display")
            if isinstance(display, str) and display:
                concepts.append({"text": display})
        key = content_key(concepts)
        if key is None:
            return self.resolve_concepts(concepts)
        if key not in self._resolved:
            self._resolved[key] = self.resolve_concepts(concepts)
        return self._resolved[key]

    def resolve_concepts(self, concepts: Sequence[object]) -> ResolvedMedication | None:
        catalog = self._kb.medications
        codes = [_normalize_code(c) for concept in concepts for c in codes_of(concept)]
        ingredients = catalog.ingredients_for_codes(codes)
        if ingredients:
            strength: dict[str, float] = {}
            for c in codes:
                product = catalog.products.get((c.system, c.code))
                if product is not None:
                    strength = dict(product.strength_mg)
                    break
            return ResolvedMedication(ingredients, Recognition.CODE, strength)
        texts = [t for concept in concepts for t in texts_of(concept)]
        ingredients = catalog.ingredients_for_text(texts)
        if not ingredients:
            return None
        strength = {}
        if len(ingredients) == 1:
            for text in texts:
                m = _STRENGTH_IN_TEXT.search(text)
                if m:
                    strength = {ingredients[0]: float(m.group(1))}
                    break
        return ResolvedMedication(ingredients, Recognition.NAME, strength)

    def _dereference(self, resource: Mapping[str, Any], reference: Mapping[str, Any]) -> Mapping[str, Any] | None:
        ref = reference.get("reference")
        if not isinstance(ref, str) or not ref:
            if not reference.get("display"):
                self.unresolved_references += 1
            return None
        if ref.startswith("#"):
            for contained in resource.get("contained") or ():
                if isinstance(contained, Mapping) and contained.get("id") == ref[1:]:
                    return contained
        else:
            parts = ref.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Medication":
                medication = self._medications.get(parts[-1])
                accepted = self._accept(medication) if medication is not None else None
                if accepted is not None:
                    return accepted
            if len(parts) >= 4 and parts[-2] == "_history" and parts[-4] == "Medication":
                medication = self._medications.get(parts[-3])
                accepted = self._accept(medication) if medication is not None else None
                if accepted is not None:
                    return accepted
        self.unresolved_references += 1
        return None


def _normalize_code(code: Code) -> Code:
    if code.system == NDC:
        return Code(code.system, normalize_ndc(code.code), code.display)
    return code
