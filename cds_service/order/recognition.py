"""Recognising ketamine and esketamine: which MedicationRequests of a hook call are for them.

``find_ketamine_requests`` runs on every hook call, most of them for other drugs: it touches only
``resourceType``, ``id``, the medication codings and texts, against a code set precomputed once per
knowledge base (ingredient and product codes, NDCs in their 11-digit form, names and synonyms as whole words).
A ``medicationReference`` is resolved against the contained resources and the draftOrders Bundle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds_service.knowledge.model import Knowledge, MedicationCatalog
from cds_service.order.model import Drug
from cds_service.record.fhirdata import bundle_resources, coding_maps
from cds_service.record.model import Recognition
from cds_service.terminology.codes import NDC, RXNORM
from cds_service.terminology.ndc import normalize_ndc


@dataclass(frozen=True)
class KetamineIndex:
    """Everything that identifies ketamine/esketamine in one knowledge base, precomputed."""

    codes: Mapping[tuple[str, str], Drug]  # ingredient and product codes (system, code)
    ndc11: Mapping[str, Drug]  # NDC codes normalised to 11 digits (terminology.ndc.normalize_ndc)
    names: tuple[tuple[str, Drug], ...]  # lower-case names and synonyms, esketamine first


_INDEX_LOCK = threading.Lock()
_INDEX_CACHE: dict[int, tuple[Knowledge, KetamineIndex]] = {}


def _drug_of_ingredient(catalog: MedicationCatalog, key: str) -> Drug | None:
    ingredient = catalog.ingredients.get(key)
    roles = ingredient.roles if ingredient is not None else frozenset()
    if "esketamine" in roles or key == "esketamine":
        return Drug.ESKETAMINE
    if "ketamine" in roles or key == "ketamine":
        return Drug.KETAMINE
    return None


def ketamine_index(kb: Knowledge) -> KetamineIndex:
    """The ketamine index of ``kb``, built once per knowledge-base object."""
    cached = _INDEX_CACHE.get(id(kb))
    if cached is not None and cached[0] is kb:
        return cached[1]
    catalog = kb.medications
    codes: dict[tuple[str, str], Drug] = {}
    for key, ingredient_key in catalog.ingredient_codes.items():
        drug = _drug_of_ingredient(catalog, ingredient_key)
        if drug is not None:
            codes[key] = drug
    for key, product in catalog.products.items():
        drugs = [d for d in (_drug_of_ingredient(catalog, i) for i in product.ingredients) if d is not None]
        if drugs:
            codes[key] = Drug.ESKETAMINE if Drug.ESKETAMINE in drugs else drugs[0]
    for ingredient in catalog.ingredients.values():
        drug = _drug_of_ingredient(catalog, ingredient.key)
        if drug is not None and ingredient.rxcui:
            codes.setdefault((RXNORM, ingredient.rxcui), drug)
    ndc11 = {normalize_ndc(code): d for (system, code), d in codes.items() if system == NDC}
    names: list[tuple[str, Drug]] = []
    for ingredient in catalog.ingredients.values():
        drug = _drug_of_ingredient(catalog, ingredient.key)
        if drug is not None:
            for name in (ingredient.name.lower(), *ingredient.synonyms):
                names.append((name.lower(), drug))
    names.sort(key=lambda n: (n[1] is not Drug.ESKETAMINE, -len(n[0])))
    index = KetamineIndex(codes=codes, ndc11=ndc11, names=tuple(dict.fromkeys(names)))
    with _INDEX_LOCK:
        if len(_INDEX_CACHE) > 8:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[id(kb)] = (kb, index)
    return index


def word_in(text: str, word: str) -> bool:
    """Whole-word match (same rule as the catalog's name fallback: "esketamine" does not contain "ketamine")."""
    start = text.find(word)
    while start != -1:
        end = start + len(word)
        before_ok = start == 0 or not text[start - 1].isalnum()
        after_ok = end == len(text) or not text[end].isalnum()
        if before_ok and after_ok:
            return True
        start = text.find(word, start + 1)
    return False


def _recognise_concept(concept: object, index: KetamineIndex) -> tuple[Drug, Recognition] | None:
    """Ketamine or esketamine by code (ingredient, product, NDC), else by whole-word name."""
    codings = coding_maps(concept)
    for coding in codings:
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            drug = index.codes.get((system, code))
            if drug is None and system == NDC:
                drug = index.ndc11.get(normalize_ndc(code))
            if drug is not None:
                return drug, Recognition.CODE
    texts = [c.get("display") for c in codings]
    if isinstance(concept, Mapping):
        texts.append(concept.get("text"))
    drug = _recognise_name(texts, index)
    return (drug, Recognition.NAME) if drug is not None else None


def _recognise_name(texts: Iterable[object], index: KetamineIndex) -> Drug | None:
    for text in texts:
        if isinstance(text, str) and text:
            low = text.lower()
            for name, drug in index.names:
                if name in low and word_in(low, name):
                    return drug
    return None


def resolve_reference(
    reference: object, owner: Mapping[str, Any], draft_orders: object, rtype: str
) -> Mapping[str, Any] | None:
    """A contained resource (``#id``) or one in the draftOrders bundle (``Type/id`` or its fullUrl)."""
    if not isinstance(reference, str) or not reference:
        return None
    if reference.startswith("#"):
        contained = owner.get("contained")
        if isinstance(contained, list):
            for res in contained:
                if isinstance(res, Mapping) and res.get("id") == reference[1:] and res.get("resourceType") == rtype:
                    return res
        return None
    entries = draft_orders.get("entry") if isinstance(draft_orders, Mapping) else None
    if not isinstance(entries, list):
        return None
    tail = reference.rstrip("/").split("/")
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        res = entry.get("resource")
        if not isinstance(res, Mapping) or res.get("resourceType") != rtype:
            continue
        if entry.get("fullUrl") == reference:
            return res
        if len(tail) >= 2 and tail[-2] == rtype and res.get("id") == tail[-1]:
            return res
    return None


@dataclass(frozen=True)
class MedicationSource:
    drug: Drug
    recognition: Recognition
    medication: Mapping[str, Any] | None  # the resolved Medication resource, if any


def recognise_request(
    request: Mapping[str, Any], draft_orders: object, index: KetamineIndex
) -> MedicationSource | None:
    concept = request.get("medicationCodeableConcept")
    if concept is not None:
        found = _recognise_concept(concept, index)
        return MedicationSource(*found, None) if found else None
    ref = request.get("medicationReference")
    if not isinstance(ref, Mapping):
        return None
    medication = resolve_reference(ref.get("reference"), request, draft_orders, "Medication")
    if medication is not None:
        found = _recognise_concept(medication.get("code"), index)
        if found is None:  # a compounded Medication: look at its ingredients
            ingredients = medication.get("ingredient")
            for item in ingredients if isinstance(ingredients, list) else []:
                if isinstance(item, Mapping):
                    found = _recognise_concept(item.get("itemCodeableConcept"), index)
                    if found:
                        break
        if found:
            return MedicationSource(*found, medication)
    drug = _recognise_name([ref.get("display")], index)
    return MedicationSource(drug, Recognition.NAME, medication) if drug is not None else None


def _selected_ids(selections: Sequence[str]) -> set[str]:
    ids: set[str] = set()
    for sel in selections:
        if isinstance(sel, str):
            parts = sel.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "MedicationRequest":
                ids.add(parts[-1])
    return ids


def find_ketamine_requests(
    draft_orders: Mapping[str, Any], selections: Sequence[str] | None, kb: Knowledge
) -> list[Mapping[str, Any]]:
    """The MedicationRequests of ``draftOrders`` for ketamine or esketamine (cheap, no validation).

    ``selections`` (order-select) limits the scan to the entries it names as ``MedicationRequest/<id>``;
    None (order-sign) scans every entry. Malformed entries are skipped, never raised.
    """
    resources, _errors = bundle_resources(draft_orders)
    if not resources:
        return []
    wanted = None if selections is None else _selected_ids(selections)
    if wanted is not None and not wanted:
        return []
    index = ketamine_index(kb)
    found: list[Mapping[str, Any]] = []
    for res in resources:
        if res.get("resourceType") != "MedicationRequest":
            continue
        if wanted is not None and res.get("id") not in wanted:
            continue
        if recognise_request(res, draft_orders, index) is not None:
            found.append(res)
    return found
