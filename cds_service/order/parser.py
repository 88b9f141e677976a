"""Finds the ketamine/esketamine MedicationRequests of a hook call and reads them into ``MedicationOrder``.

``find_ketamine_requests`` runs on every hook call, most of them for other drugs: it touches only
``resourceType``, ``id``, the medication codings and texts, against a code set precomputed once per
knowledge base. ``parse_order`` then reads dose, rate, duration, frequency, route and reasons of a ketamine
order, normalising units with UCUM semantics (``units.py``). What it cannot read of the dose goes into
``MedicationOrder.problems`` in plain words: never a guess, never an exception.

Real clients break FHIR's letter (clinical-rules.md §0): a single object where FHIR has a list (the CDS
Hooks sandbox sends ``reasonCode: {...}``) is read as a one-element list and said in
``MedicationOrder.normalised``; an element that cannot be read at all is named in ``unreadable`` (or, for
the dosage, in ``problems``), never dropped in silence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cds_service.knowledge.model import Knowledge, MedicationCatalog, RouteTerms
from cds_service.order.model import (
    Dose,
    DoseUnit,
    Drug,
    InfusionRate,
    MedicationOrder,
    OrderStage,
    Route,
)
from cds_service.order.units import (
    DOSE_UNITS,
    Dimension,
    UnitReading,
    fmt,
    quantity_value,
    read_time_code,
    read_unit,
)
from cds_service.record.dates import parse_fhir_datetime
from cds_service.record.fhirdata import bundle_resources, coding_maps, usable_number
from cds_service.record.model import Code, Recognition
from cds_service.terminology.codes import NDC, RXNORM, SNOMED, V3_ROUTE
from cds_service.terminology.ndc import normalize_ndc

MINUTES_PER_WEEK: Final = 7 * 24 * 60


class NotAKetamineOrder(ValueError):
    """``parse_order`` was given a MedicationRequest whose medication is not ketamine or esketamine."""


# --- recognising the medication -------------------------------------------------------------------


@dataclass(frozen=True)
class _KetamineIndex:
    """Everything that identifies ketamine/esketamine in one knowledge base, precomputed."""

    codes: Mapping[tuple[str, str], Drug]  # ingredient and product codes (system, code)
    ndc11: Mapping[str, Drug]  # NDC codes normalised to 11 digits (terminology.ndc.normalize_ndc)
    names: tuple[tuple[str, Drug], ...]  # lower-case names and synonyms, esketamine first


_INDEX_LOCK = threading.Lock()
_INDEX_CACHE: dict[int, tuple[Knowledge, _KetamineIndex]] = {}


def _drug_of_ingredient(catalog: MedicationCatalog, key: str) -> Drug | None:
    ingredient = catalog.ingredients.get(key)
    roles = ingredient.roles if ingredient is not None else frozenset()
    if "esketamine" in roles or key == "esketamine":
        return Drug.ESKETAMINE
    if "ketamine" in roles or key == "ketamine":
        return Drug.KETAMINE
    return None


def _index(kb: Knowledge) -> _KetamineIndex:
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
    index = _KetamineIndex(codes=codes, ndc11=ndc11, names=tuple(dict.fromkeys(names)))
    with _INDEX_LOCK:
        if len(_INDEX_CACHE) > 8:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[id(kb)] = (kb, index)
    return index


def _word_in(text: str, word: str) -> bool:
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


@dataclass
class _Notes:
    """What the tolerant reading of one order found: deviations read safely and elements not read."""

    normalised: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def listed(self, value: object, label: str, *, into: list[str] | None = None) -> list[Mapping[str, Any]]:
        """A FHIR list element read tolerantly (clinical-rules.md §0): a lone object is a one-element list
        (noted); entries that are not objects, or a value that is neither, are named in ``into`` (default:
        ``unreadable``), never dropped in silence. ``label`` names the element in a prescriber's words."""
        unread = self.unreadable if into is None else into
        if value is None:
            return []
        if isinstance(value, Mapping):
            self.normalised.append(f"{label} was sent as a single entry, not a list: read as one")
            return [value]
        if not isinstance(value, list):
            unread.append(f"{label} could not be read (not a list of entries)")
            return []
        items = [v for v in value if isinstance(v, Mapping)]
        if len(items) < len(value):
            lost = len(value) - len(items)
            unread.append(f"{lost} of the {len(value)} entries of {label} could not be read")
        return items


def _recognise_concept(concept: object, index: _KetamineIndex) -> tuple[Drug, Recognition] | None:
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


def _recognise_name(texts: Iterable[object], index: _KetamineIndex) -> Drug | None:
    for text in texts:
        if isinstance(text, str) and text:
            low = text.lower()
            for name, drug in index.names:
                if name in low and _word_in(low, name):
                    return drug
    return None


def _resolve(reference: object, owner: Mapping[str, Any], draft_orders: object, rtype: str) -> Mapping[str, Any] | None:
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
class _MedicationSource:
    drug: Drug
    recognition: Recognition
    medication: Mapping[str, Any] | None  # the resolved Medication resource, if any


def _recognise_request(
    request: Mapping[str, Any], draft_orders: object, index: _KetamineIndex
) -> _MedicationSource | None:
    concept = request.get("medicationCodeableConcept")
    if concept is not None:
        found = _recognise_concept(concept, index)
        return _MedicationSource(*found, None) if found else None
    ref = request.get("medicationReference")
    if not isinstance(ref, Mapping):
        return None
    medication = _resolve(ref.get("reference"), request, draft_orders, "Medication")
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
            return _MedicationSource(*found, medication)
    drug = _recognise_name([ref.get("display")], index)
    return _MedicationSource(drug, Recognition.NAME, medication) if drug is not None else None


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
    index = _index(kb)
    found: list[Mapping[str, Any]] = []
    for res in resources:
        if res.get("resourceType") != "MedicationRequest":
            continue
        if wanted is not None and res.get("id") not in wanted:
            continue
        if _recognise_request(res, draft_orders, index) is not None:
            found.append(res)
    return found


# --- reading the order -----------------------------------------------------------------------------


_ROUTE_GROUPS: Final = {"intravenous": Route.INTRAVENOUS, "intranasal": Route.INTRANASAL, "other": Route.OTHER}
_CODED_ROUTE_SYSTEMS: Final = frozenset({SNOMED, V3_ROUTE})


def _read_route(dosage: Mapping[str, Any] | None, problems: list[str], routes: RouteTerms) -> Route:
    """The route of ``Dosage.route`` by the knowledge base's route codes, then its words (``kb.routes``)."""
    route = dosage.get("route") if dosage else None
    if not isinstance(route, Mapping):
        return Route.UNSPECIFIED
    texts: list[str] = []
    for coding in coding_maps(route):
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str) and (system, code) in routes.codes:
            return _ROUTE_GROUPS[routes.codes[(system, code)]]
        display = coding.get("display")
        # a display of a known system with an unknown code is not evidence (v3 NASINHLC reads "nasal")
        if isinstance(display, str) and system not in _CODED_ROUTE_SYSTEMS:
            texts.append(display)
    if isinstance(route.get("text"), str):
        texts.insert(0, route["text"])
    for text in texts:
        low = text.lower()
        for word, group in routes.words:
            if _word_in(low, word):
                return _ROUTE_GROUPS[group]
    shown = next((t for t in texts if t), None) or next(
        (str(c.get("code")) for c in coding_maps(route) if c.get("code")), "coded route"
    )
    problems.append(f"route '{shown}' not recognised: read as no route given")
    return Route.UNSPECIFIED


def _concentration_mg_per_ml(medication: Mapping[str, Any] | None) -> float | None:
    """mg per mL from ``Medication.ingredient[].strength`` (a Ratio such as 50 mg / 1 mL), if stated."""
    if medication is None:
        return None
    ingredients = medication.get("ingredient")
    for item in ingredients if isinstance(ingredients, list) else []:
        strength = item.get("strength") if isinstance(item, Mapping) else None
        if not isinstance(strength, Mapping):
            continue
        num, den = strength.get("numerator"), strength.get("denominator")
        if not isinstance(num, Mapping) or not isinstance(den, Mapping):
            continue
        n_unit = read_unit(num, DOSE_UNITS, "strength").unit
        d_unit = read_unit(den, DOSE_UNITS, "strength").unit
        n_val, d_val = quantity_value(num), quantity_value(den)
        if (
            n_unit and d_unit and n_val and d_val
            and n_unit.dimension is Dimension.MASS and d_unit.dimension is Dimension.VOLUME
        ):
            return (n_val * n_unit.factor) / (d_val * d_unit.factor)
    return None


@dataclass
class _Reading:
    """Mutable scratchpad while reading one dosage instruction."""

    problems: list[str]
    concentration: float | None


def _note(reading: UnitReading, problems: list[str]) -> None:
    if reading.note:
        problems.append(reading.note)


def _read_dose(dose_and_rate: Mapping[str, Any], r: _Reading) -> Dose | None:
    if "doseRange" in dose_and_rate and "doseQuantity" not in dose_and_rate:
        r.problems.append("dose given as a range: a single dose is needed to check it")
        return None
    quantity = dose_and_rate.get("doseQuantity")
    if not isinstance(quantity, Mapping):
        return None
    value = quantity_value(quantity)
    reading = read_unit(quantity, DOSE_UNITS, "dose")
    written = f"{fmt(value) if value is not None else '?'} {reading.written}".strip()
    if value is None:
        r.problems.append(f"dose value missing or not a number ('{written}')")
        return None
    if value <= 0:
        r.problems.append(f"dose '{written}' is not a positive amount")
        return None
    if quantity.get("comparator"):
        r.problems.append(f"dose '{quantity['comparator']} {written}' is a limit, not a dose")
        return None
    unit = reading.unit
    if unit is None:
        shown = reading.written or "no unit"
        r.problems.append(f"dose unit '{shown}' not understood (expected mg, ug, g or mg/kg)")
        return None
    _note(reading, r.problems)
    if unit.dimension is Dimension.MASS:
        return Dose(value * unit.factor, DoseUnit.MG, written)
    if unit.dimension is Dimension.MASS_PER_WEIGHT:
        return Dose(value * unit.factor, DoseUnit.MG_PER_KG, written)
    if unit.dimension is Dimension.VOLUME:
        if r.concentration is None:
            r.problems.append(f"dose '{written}' is a volume and the order states no concentration (mg/mL)")
            return None
        mg = value * unit.factor * r.concentration
        return Dose(mg, DoseUnit.MG, f"{written} of {fmt(r.concentration)} mg/mL")
    r.problems.append(f"dose unit '{reading.written}' is not a dose (expected mg, ug, g or mg/kg)")
    return None


def _read_rate(dose_and_rate: Mapping[str, Any], r: _Reading) -> InfusionRate | None:
    if "rateRange" in dose_and_rate:
        r.problems.append("infusion rate given as a range: a single rate is needed to check it")
        return None
    quantity = dose_and_rate.get("rateQuantity")
    if isinstance(quantity, Mapping):
        value = quantity_value(quantity)
        reading = read_unit(quantity, DOSE_UNITS, "rate")
        written = f"{fmt(value) if value is not None else '?'} {reading.written}".strip()
        if value is None or value <= 0:
            r.problems.append(f"infusion rate '{written}' is not a positive amount")
            return None
        if reading.unit is None:
            r.problems.append(f"infusion rate unit '{reading.written or 'no unit'}' not understood")
            return None
        _note(reading, r.problems)
        return _rate_from(value * reading.unit.factor, reading.unit.dimension, written, r)
    ratio = dose_and_rate.get("rateRatio")
    if isinstance(ratio, Mapping):
        return _read_rate_ratio(ratio, r)
    return None


def _read_rate_ratio(ratio: Mapping[str, Any], r: _Reading) -> InfusionRate | None:
    num, den = ratio.get("numerator"), ratio.get("denominator")
    if not isinstance(num, Mapping) or not isinstance(den, Mapping):
        r.problems.append("infusion rate ratio without numerator or denominator")
        return None
    n_val, d_val = quantity_value(num), quantity_value(den)
    n_read = read_unit(num, DOSE_UNITS, "rate")
    d_code = den.get("code") if isinstance(den.get("code"), str) else den.get("unit")
    d_read = read_time_code(d_code, "rate")
    written = (
        f"{fmt(n_val) if n_val is not None else '?'} {n_read.written}"
        f" per {fmt(d_val) if d_val is not None else '?'} {d_read.written}"
    )
    if not n_val or not d_val or n_val <= 0 or d_val <= 0 or n_read.unit is None or d_read.unit is None:
        r.problems.append(f"infusion rate '{written}' not understood")
        return None
    _note(n_read, r.problems)
    _note(d_read, r.problems)
    dimension = {
        Dimension.MASS: Dimension.MASS_RATE,
        Dimension.MASS_PER_WEIGHT: Dimension.MASS_PER_WEIGHT_RATE,
        Dimension.VOLUME: Dimension.VOLUME_RATE,
    }.get(n_read.unit.dimension)
    if dimension is None:
        r.problems.append(f"infusion rate '{written}' not understood")
        return None
    per_minute = n_val * n_read.unit.factor / (d_val * d_read.unit.factor)
    return _rate_from(per_minute, dimension, written, r)


def _rate_from(per_minute: float, dimension: Dimension, written: str, r: _Reading) -> InfusionRate | None:
    if dimension is Dimension.MASS_RATE:
        return InfusionRate(per_minute, False, written)
    if dimension is Dimension.MASS_PER_WEIGHT_RATE:
        return InfusionRate(per_minute, True, written)
    if dimension is Dimension.VOLUME_RATE:
        if r.concentration is None:
            r.problems.append(f"infusion rate '{written}' is a volume rate and the order states no concentration")
            return None
        return InfusionRate(per_minute * r.concentration, False, f"{written} of {fmt(r.concentration)} mg/mL")
    r.problems.append(f"infusion rate unit in '{written}' is not a rate (expected mg/h, mg/min or mg/kg/h)")
    return None


def _repeat(dosage: Mapping[str, Any] | None) -> Mapping[str, Any]:
    timing = dosage.get("timing") if dosage else None
    repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
    return repeat if isinstance(repeat, Mapping) else {}


def _read_duration(repeat: Mapping[str, Any], problems: list[str]) -> float | None:
    duration = usable_number(repeat.get("duration"))
    if duration is None:
        return None
    reading = read_time_code(repeat.get("durationUnit"), "duration")
    if reading.unit is None or duration <= 0:
        problems.append(f"infusion duration '{fmt(duration)} {reading.written}' not understood")
        return None
    _note(reading, problems)
    return duration * reading.unit.factor


def _read_frequency(dosage: Mapping[str, Any] | None, repeat: Mapping[str, Any], problems: list[str]) -> float | None:
    period = usable_number(repeat.get("period"))
    if period is not None:
        reading = read_time_code(repeat.get("periodUnit"), "period")
        if reading.unit is None or period <= 0:
            problems.append(f"dosing period '{fmt(period)} {reading.written}' not understood")
            return None
        _note(reading, problems)
        frequency = max(usable_number(repeat.get("frequency")) or 1.0,
                        usable_number(repeat.get("frequencyMax")) or 0.0)
        return frequency * MINUTES_PER_WEEK / (period * reading.unit.factor)
    days = repeat.get("dayOfWeek")
    if isinstance(days, list) and days:
        return float(len(set(d for d in days if isinstance(d, str))))
    timing = dosage.get("timing") if dosage else None
    code = timing.get("code") if isinstance(timing, Mapping) else None
    if isinstance(code, Mapping):
        shown = code.get("text") or next((c.get("code") for c in coding_maps(code)), None) or "timing code"
        problems.append(f"timing '{shown}' not read: frequency per week not checked")
    return None


def _derive(dose: Dose | None, rate: InfusionRate | None, minutes: float | None) -> tuple[Dose | None, float | None]:
    """Fill a missing duration from dose/rate, or a missing dose from rate x duration (same weight basis)."""
    if rate is None:
        return dose, minutes
    if dose is not None and minutes is None:
        if (dose.unit is DoseUnit.MG_PER_KG) == rate.weight_based:
            return dose, dose.value / rate.per_minute
        return dose, None  # mg dose with a mg/kg rate (or vice versa): needs the weight, see rules.dosing
    if dose is None and minutes is not None:
        unit = DoseUnit.MG_PER_KG if rate.weight_based else DoseUnit.MG
        return Dose(rate.per_minute * minutes, unit, f"{rate.as_written} for {fmt(minutes)} min"), minutes
    return dose, minutes


def _read_reasons(
    request: Mapping[str, Any], draft_orders: object, notes: _Notes
) -> tuple[tuple[Code, ...], str | None, tuple[str, ...]]:
    codes: list[Code] = []
    texts: list[str] = []
    references: list[str] = []

    def take(concept: object) -> None:
        for coding in coding_maps(concept):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                display = coding.get("display")
                codes.append(Code(system, code, display if isinstance(display, str) else None))
        if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
            texts.append(concept["text"])

    for concept in notes.listed(request.get("reasonCode"), "the order's reason (reasonCode)"):
        take(concept)
    for ref in notes.listed(request.get("reasonReference"), "the order's reason reference (reasonReference)"):
        target = ref.get("reference")
        condition = _resolve(target, request, draft_orders, "Condition")
        if condition is not None:
            take(condition.get("code"))
        elif isinstance(target, str) and target:
            references.append(target)
        if isinstance(ref.get("display"), str):
            texts.append(ref["display"])
    text = "; ".join(dict.fromkeys(t for t in texts if t.strip())) or None
    return tuple(dict.fromkeys(codes)), text, tuple(dict.fromkeys(references))


_FIRST_WITH_DOSE: Final = ("doseQuantity", "doseRange", "rateQuantity", "rateRatio", "rateRange")


def parse_order(
    resource: Mapping[str, Any], draft_orders: Mapping[str, Any], kb: Knowledge, stage: OrderStage
) -> MedicationOrder:
    """Read a ketamine/esketamine MedicationRequest (from ``find_ketamine_requests``) into a ``MedicationOrder``.

    Raises ``NotAKetamineOrder`` when the medication is not ketamine or esketamine.
    """
    source = _recognise_request(resource, draft_orders, _index(kb))
    if source is None:
        raise NotAKetamineOrder("the MedicationRequest is not for ketamine or esketamine")
    problems: list[str] = []
    notes = _Notes()
    dosages = notes.listed(resource.get("dosageInstruction"), "the dosage instruction", into=problems)
    dosage = dosages[0] if dosages else None
    if len(dosages) > 1:
        problems.append(f"only the first of {len(dosages)} dosage instructions was checked")
    route = _read_route(dosage, problems, kb.routes)

    reading = _Reading(problems, _concentration_mg_per_ml(source.medication))
    entries = dosage.get("doseAndRate") if dosage else None
    dose_and_rates = notes.listed(entries, "the dose and rate", into=problems)
    used = [e for e in dose_and_rates if any(k in e for k in _FIRST_WITH_DOSE)]
    if len(used) > 1:
        problems.append(f"only the first of {len(used)} dose/rate entries was checked")
    dose = rate = None
    if used:
        dose = _read_dose(used[0], reading)
        rate = _read_rate(used[0], reading)
    repeat = _repeat(dosage)
    minutes = _read_duration(repeat, problems)
    frequency = _read_frequency(dosage, repeat, problems)
    dose, minutes = _derive(dose, rate, minutes)
    reason_codes, reason_text, reason_refs = _read_reasons(resource, draft_orders, notes)

    rid = resource.get("id")
    status = resource.get("status")
    return MedicationOrder(
        reference=f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else None,
        drug=source.drug,
        recognition=source.recognition,
        route=route,
        status=status if isinstance(status, str) else None,
        dose=dose,
        rate=rate,
        duration_minutes=minutes,
        frequency_per_week=frequency,
        reason_codes=reason_codes,
        reason_text=reason_text,
        problems=tuple(dict.fromkeys(problems)),
        stage=stage,
        reason_references=reason_refs,
        normalised=tuple(dict.fromkeys(notes.normalised)),
        unreadable=tuple(dict.fromkeys(notes.unreadable)),
        first_planned=_first_planned(repeat),
    )


def _first_planned(repeat: Mapping[str, Any]) -> datetime | None:
    """The start of ``timing.repeat.boundsPeriod``: the first planned administration (clinical-rules.md §3)."""
    bounds = repeat.get("boundsPeriod")
    return parse_fhir_datetime(bounds.get("start")) if isinstance(bounds, Mapping) else None

