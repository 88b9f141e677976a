"""Medication history: which ingredient a resource is about, its period and daily dose, merged exposures.

Sources (clinical-rules.md §1, §10): MedicationStatement and MedicationRequest history, medication coded
at product level (RxNorm SCD/SBD, NDC) or ingredient level, inline or by ``medicationReference`` (contained
``#id`` or ``Medication/<id>`` among the fetched resources). Unknown periods and doses are flagged on the
``MedicationUse``, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.record.dates import effective_time, newest_first, parse_fhir_datetime, period_bounds
from cds_service.record.fhirdata import (
    NUMBER_MAX,
    codes_of,
    content_key,
    is_mapping,
    quantity,
    resource_id,
    texts_of,
    usable_number,
)
from cds_service.record.model import Administration, Code, ExposurePeriod, MedicationUse, Recognition
from cds_service.record.units import bounded_days, duration_days, mass_to_mg
from cds_service.terminology.codes import NDC
from cds_service.terminology.ndc import normalize_ndc

FLAG_DURATION_UNKNOWN: Final = "duration-unknown"
FLAG_START_UNKNOWN: Final = "start-unknown"
FLAG_DOSE_UNKNOWN: Final = "dose-unknown"
FLAG_FREQUENCY_ASSUMED: Final = "frequency-assumed-daily"
FLAG_AS_NEEDED: Final = "as-needed"
FLAG_NAME_ONLY: Final = "recognised-by-name"

EXCLUDED_REQUEST_STATUS: Final = frozenset({"draft", "entered-in-error", "cancelled"})
EXCLUDED_REQUEST_INTENT: Final = frozenset({"proposal", "plan"})
EXCLUDED_STATEMENT_STATUS: Final = frozenset({"entered-in-error", "not-taken", "intended"})
# Dose units that count dosage units (tablets, capsules, patches): multiplied by the product strength.
UNIT_DOSE_UNITS: Final = frozenset(
    {"tab", "tabs", "tablet", "tablets", "{tbl}", "{tablet}", "{tablets}", "cap", "caps", "capsule", "capsules",
     "{capsule}", "{cap}", "patch", "{patch}", "1", "{unit}", "unit", "each", "{each}"}
)  # fmt: skip
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


# ----------------------------------------------------------------------------------------- uses


class DailyDoses:
    """``daily_dose_mg`` and the timing bounds of dosages for one record build, computed once per distinct
    dosage content (and strength).

    A history repeats the same dosage on every refill of a drug. Nothing outlives the build.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[bytes, float | None], tuple[float | None, tuple[str, ...]]] = {}
        self._bounds: dict[bytes, tuple[datetime | None, datetime | None, float | None]] = {}
        self._last: tuple[object, bytes | None] = (_NOTHING, None)  # the dosages last keyed, and their key

    def of(self, dosages: object, strength_mg: float | None) -> tuple[float | None, tuple[str, ...]]:
        key = self._key(dosages)
        if key is None:
            dose, flags = daily_dose_mg(dosages, strength_mg)
            return dose, tuple(flags)
        known = self._known.get((key, strength_mg))
        if known is None:
            dose, flags = daily_dose_mg(dosages, strength_mg)
            known = self._known[(key, strength_mg)] = (dose, tuple(flags))
        return known

    def timing_bounds(self, dosages: object) -> tuple[datetime | None, datetime | None, float | None]:
        """``_timing_bounds(dosages)``."""
        key = self._key(dosages)
        if key is None:
            return _timing_bounds(dosages)
        known = self._bounds.get(key)
        if known is None:
            known = self._bounds[key] = _timing_bounds(dosages)
        return known

    def _key(self, dosages: object) -> bytes | None:
        """``content_key(dosages)``; the same object asked again in a row (bounds, then each ingredient's dose)
        is keyed once. The object is held meanwhile, so its identity cannot be reused."""
        last, key = self._last
        if last is not dosages:
            key = content_key(dosages)
            self._last = (dosages, key)
        return key


_NOTHING: Final = object()


def statement_uses(
    resource: Mapping[str, Any], med: ResolvedMedication, doses: DailyDoses | None = None
) -> list[MedicationUse]:
    """MedicationUses of a MedicationStatement (one per ingredient), or [] when it is excluded."""
    status = resource.get("status")
    if status in EXCLUDED_STATEMENT_STATUS:
        return []
    start, end = period_bounds(resource.get("effectivePeriod"))
    if start is None and end is None:
        start = parse_fhir_datetime(resource.get("effectiveDateTime"))
    ongoing = status == "active" and end is None
    flags: list[str] = []
    if start is None:
        flags.append(FLAG_START_UNKNOWN)
    if end is None and not ongoing:
        flags.append(FLAG_DURATION_UNKNOWN)
    dosages = resource.get("dosage")
    return _uses("MedicationStatement", resource, med, status, start, end, ongoing, flags, dosages, doses)


def request_uses(
    resource: Mapping[str, Any], med: ResolvedMedication, doses: DailyDoses | None = None
) -> list[MedicationUse]:
    """MedicationUses of a MedicationRequest in the history (not draft/cancelled/entered-in-error)."""
    status = resource.get("status")
    if status in EXCLUDED_REQUEST_STATUS or resource.get("intent") in EXCLUDED_REQUEST_INTENT:
        return []
    raw_dispense = resource.get("dispenseRequest")
    dispense: Mapping[str, Any] = raw_dispense if is_mapping(raw_dispense) else {}
    dosages = resource.get("dosageInstruction")
    start, end = period_bounds(dispense.get("validityPeriod"))
    bounds = doses.timing_bounds(dosages) if doses is not None else _timing_bounds(dosages)
    bounds_start, bounds_end, bounds_days = bounds
    if end is None and start is None:
        start, end = bounds_start, bounds_end
    start = start or bounds_start or parse_fhir_datetime(resource.get("authoredOn"))
    if end is None and start is not None:
        days = _supply_days(dispense)
        if days is None and bounds_days is not None:
            days = bounds_days
        if days is not None:
            end = start + timedelta(days=days)
    ongoing = status == "active" and end is None
    flags: list[str] = []
    if start is None:
        flags.append(FLAG_START_UNKNOWN)
    if end is None:
        flags.append(FLAG_DURATION_UNKNOWN)
    return _uses("MedicationRequest", resource, med, status, start, end, ongoing, flags, dosages, doses)


def _supply_days(dispense: Mapping[str, Any]) -> float | None:
    """Expected supply duration times (1 + refills allowed)."""
    value, unit = quantity(dispense.get("expectedSupplyDuration"))
    if value is None:
        return None
    days = duration_days(value, unit)
    if days is None:
        return None
    repeats = dispense.get("numberOfRepeatsAllowed")
    fills = 1 + (repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0 else 0)
    return bounded_days(days * fills) if fills <= NUMBER_MAX else None


def _timing_bounds(dosages: object) -> tuple[datetime | None, datetime | None, float | None]:
    for dosage in _as_list(dosages):
        repeat = _repeat(dosage)
        start, end = period_bounds(repeat.get("boundsPeriod"))
        value, unit = quantity(repeat.get("boundsDuration"))
        days = duration_days(value, unit) if value is not None else None
        if start or end or days:
            return start, end, days
    return None, None, None


def _uses(
    resource_type: str,
    resource: Mapping[str, Any],
    med: ResolvedMedication,
    status: object,
    start: datetime | None,
    end: datetime | None,
    ongoing: bool,
    flags: list[str],
    dosages: object,
    doses: DailyDoses | None,
) -> list[MedicationUse]:
    uses = []
    rid = resource_id(resource)
    status_text = status if isinstance(status, str) else None
    for ingredient in med.ingredients:
        strength = med.strength_mg.get(ingredient)
        dose, dose_flags = doses.of(dosages, strength) if doses is not None else daily_dose_mg(dosages, strength)
        all_flags = [*flags, *dose_flags]
        if med.recognition is Recognition.NAME:
            all_flags.append(FLAG_NAME_ONLY)
        uses.append(
            MedicationUse(
                resource_type=resource_type,
                resource_id=rid,
                ingredient=ingredient,
                status=status_text,
                start=start,
                end=None if ongoing else end,
                ongoing=ongoing,
                daily_dose_mg=dose,
                recognition=med.recognition,
                flags=tuple(dict.fromkeys(all_flags)) if all_flags else (),
            )
        )
    return uses


def daily_dose_mg(dosages: object, strength_mg: float | None) -> tuple[float | None, list[str]]:
    """Total mg/day over the Dosage entries: dose (mg, or dosage units × strength) × times per day."""
    total = 0.0
    found = False
    flags: list[str] = []
    for dosage in _as_list(dosages):
        if dosage.get("asNeededBoolean") is True or dosage.get("asNeededCodeableConcept") is not None:
            flags.append(FLAG_AS_NEEDED)
        amount = _dose_amount_mg(dosage, strength_mg)
        if amount is None:
            continue
        per_day, assumed = _times_per_day(dosage)
        if per_day is None:
            continue
        if assumed:
            flags.append(FLAG_FREQUENCY_ASSUMED)
        total += amount * per_day
        found = True
    if not found:
        return None, [*flags, FLAG_DOSE_UNKNOWN]
    return round(total, 3), flags


def _dose_amount_mg(dosage: Mapping[str, Any], strength_mg: float | None) -> float | None:
    for dose_and_rate in _as_list(dosage.get("doseAndRate")):
        value, unit = quantity(dose_and_rate.get("doseQuantity"))
        if value is None:
            dose_range = dose_and_rate.get("doseRange")
            if isinstance(dose_range, Mapping):
                value, unit = quantity(dose_range.get("low"))
        if value is None:
            continue
        mg = mass_to_mg(value, unit)
        if mg is not None:
            return mg
        if strength_mg is not None and unit is not None and unit.lower() in UNIT_DOSE_UNITS:
            return value * strength_mg
    return None


def _times_per_day(dosage: Mapping[str, Any]) -> tuple[float | None, bool]:
    """(administrations per day, whether once daily was assumed for lack of timing)."""
    repeat = _repeat(dosage)
    if not repeat or (repeat.get("frequency") is None and repeat.get("period") is None):
        return 1.0, True
    frequency = usable_number(repeat.get("frequency", 1))
    period = usable_number(repeat.get("period", 1))
    if frequency is None or period is None or period <= 0:
        return None, False
    days = duration_days(period, repeat.get("periodUnit") or "d")
    if not days:
        return None, False
    return frequency / days, False


def _repeat(dosage: Mapping[str, Any]) -> Mapping[str, Any]:
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if is_mapping(timing) else None
    return repeat if is_mapping(repeat) else {}


def _as_list(value: object) -> list[Mapping[str, Any]]:
    if is_mapping(value):
        return [value]
    if isinstance(value, list):
        return [v for v in value if is_mapping(v)]
    return []


# ----------------------------------------------------------------------------------------- exposures


def merge_exposures(uses: Iterable[MedicationUse], kb: Knowledge) -> list[ExposurePeriod]:
    """Per ingredient, overlapping or touching uses collapse into one period.

    Touching: the next use starts at most ``medications.merge_gap_days`` after the period's documented end
    (refill slack). Successive refills (clinical-rules.md §1): a use whose duration is unknown (a
    MedicationRequest with no supply duration) is joined by a next use that starts at most
    ``medications.refill_gap_days`` after it. The period's end stays the last *documented* date (the last
    refill's start when no end is known): the refill gap links uses, it never stretches a period.

    Uses without a start date cannot be placed in time: they form one period per ingredient with
    ``start=None`` (flagged ``start-unknown``), which proves history but never recency or duration.
    """
    merge_gap = timedelta(days=kb.number("medications.merge_gap_days"))
    refill_gap = timedelta(days=kb.number("medications.refill_gap_days"))
    by_ingredient: dict[str, list[MedicationUse]] = {}
    for use in uses:
        by_ingredient.setdefault(use.ingredient, []).append(use)
    periods: list[ExposurePeriod] = []
    for ingredient, items in by_ingredient.items():
        dated = sorted((u for u in items if u.start is not None), key=lambda u: u.start)  # type: ignore[arg-type,return-value]
        undated = [u for u in items if u.start is None]
        group: list[MedicationUse] = []
        group_end: datetime | None = None
        refill_reach: datetime | None = None  # latest start + refill gap of a use with unknown duration
        group_open = False
        for use in dated:
            assert use.start is not None
            touches = group_end is not None and use.start <= group_end + merge_gap
            refilled = refill_reach is not None and use.start <= refill_reach
            if group and (group_open or touches or refilled):
                group.append(use)
            else:
                if group:
                    periods.append(_period(ingredient, group, kb))
                group = [use]
                group_end, refill_reach, group_open = None, None, False
            group_open = group_open or use.ongoing
            use_end = use.end or use.start
            group_end = use_end if group_end is None else max(group_end, use_end)
            if use.end is None and not use.ongoing:
                reach = use.start + refill_gap
                refill_reach = reach if refill_reach is None else max(refill_reach, reach)
        if group:
            periods.append(_period(ingredient, group, kb))
        if undated:
            periods.append(_period(ingredient, undated, kb))
    return periods


def _period(ingredient: str, uses: list[MedicationUse], kb: Knowledge) -> ExposurePeriod:
    info = kb.medications.ingredients.get(ingredient)
    starts = [u.start for u in uses if u.start is not None]
    ongoing = any(u.ongoing for u in uses)
    ends = [t for t in (u.end or u.start for u in uses) if t is not None]
    flags = [f for u in uses for f in u.flags]
    return ExposurePeriod(
        ingredient=ingredient,
        drug_class=info.drug_class if info else None,
        roles=info.roles if info else frozenset(),
        start=min(starts) if starts else None,
        end=None if ongoing else (max(ends) if ends else None),
        ongoing=ongoing,
        uses=tuple(newest_first(uses, attrgetter("start"))),
        flags=tuple(dict.fromkeys(flags)),
    )


# ----------------------------------------------------------------------------------------- administrations


def administration(resource: Mapping[str, Any], med: ResolvedMedication, kb: Knowledge) -> list[Administration]:
    """A completed ketamine/esketamine MedicationAdministration; [] for anything else."""
    if resource.get("status") != "completed":
        return []
    out = []
    dose_mg, dose_mg_per_kg = _administered_dose(resource)
    for ingredient in med.ingredients:
        info = kb.medications.ingredients.get(ingredient)
        if info and info.roles & {"ketamine", "esketamine"}:
            out.append(
                Administration(resource_id(resource), effective_time(resource), ingredient, dose_mg, dose_mg_per_kg)
            )
    return out


def _administered_dose(resource: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``dosage.dose`` as (mg, mg/kg); (None, None) when absent or in another unit (never guessed)."""
    dosage = resource.get("dosage")
    dose = dosage.get("dose") if isinstance(dosage, Mapping) else None
    value = usable_number(dose.get("value")) if isinstance(dose, Mapping) else None
    if dose is None or value is None:
        return None, None
    unit = dose.get("code") or dose.get("unit")
    if isinstance(unit, str) and unit.replace(" ", "").lower() in ("mg/kg", "mg/kg{dose}"):
        return None, value
    mg = mass_to_mg(value, unit if isinstance(unit, str) else None)
    return mg, None
