"""Medication uses: each MedicationStatement or MedicationRequest of the history as a period and a daily dose
in mg (dose x frequency, unit doses x product strength); unknown periods and doses flagged, never dropped."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from cds_service.record.dates import parse_fhir_datetime, period_bounds
from cds_service.record.fhirdata import (
    NUMBER_MAX,
    content_key,
    is_mapping,
    quantity,
    resource_id,
    usable_number,
)
from cds_service.record.medications.resolver import ResolvedMedication
from cds_service.record.model import MedicationUse, Recognition
from cds_service.record.units import bounded_days, duration_days, mass_to_mg

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
