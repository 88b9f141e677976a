"""Reading a dosage instruction of a draft order: route, concentration, dose, rate, duration and frequency.

Units are normalised with UCUM semantics (``units.py``). What cannot be read of the dose goes into the
order's ``problems`` in plain words: never a guess, never an exception. Routes are read with the knowledge
base's route terms (``kb.routes``: codes first, then whole words).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cds_service.knowledge.model import RouteTerms
from cds_service.order.model import Dose, DoseUnit, InfusionRate, Route
from cds_service.order.recognition import word_in
from cds_service.order.units import (
    DOSE_UNITS,
    Dimension,
    UnitReading,
    fmt,
    quantity_value,
    read_time_code,
    read_unit,
)
from cds_service.record.fhirdata import coding_maps, usable_number
from cds_service.terminology.codes import SNOMED, V3_ROUTE

MINUTES_PER_WEEK: Final = 7 * 24 * 60
_ROUTE_GROUPS: Final = {"intravenous": Route.INTRAVENOUS, "intranasal": Route.INTRANASAL, "other": Route.OTHER}
_CODED_ROUTE_SYSTEMS: Final = frozenset({SNOMED, V3_ROUTE})


def read_route(dosage: Mapping[str, Any] | None, problems: list[str], routes: RouteTerms) -> Route:
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
            if word_in(low, word):
                return _ROUTE_GROUPS[group]
    shown = next((t for t in texts if t), None) or next(
        (str(c.get("code")) for c in coding_maps(route) if c.get("code")), "coded route"
    )
    problems.append(f"route '{shown}' not recognised: read as no route given")
    return Route.UNSPECIFIED


def concentration_mg_per_ml(medication: Mapping[str, Any] | None) -> float | None:
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
class Reading:
    """Mutable scratchpad while reading one dosage instruction."""

    problems: list[str]
    concentration: float | None


def _note(reading: UnitReading, problems: list[str]) -> None:
    if reading.note:
        problems.append(reading.note)


def read_dose(dose_and_rate: Mapping[str, Any], r: Reading) -> Dose | None:
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


def read_rate(dose_and_rate: Mapping[str, Any], r: Reading) -> InfusionRate | None:
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


def _read_rate_ratio(ratio: Mapping[str, Any], r: Reading) -> InfusionRate | None:
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


def _rate_from(per_minute: float, dimension: Dimension, written: str, r: Reading) -> InfusionRate | None:
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


def repeat_of(dosage: Mapping[str, Any] | None) -> Mapping[str, Any]:
    timing = dosage.get("timing") if dosage else None
    repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
    return repeat if isinstance(repeat, Mapping) else {}


def read_duration(repeat: Mapping[str, Any], problems: list[str]) -> float | None:
    duration = usable_number(repeat.get("duration"))
    if duration is None:
        return None
    reading = read_time_code(repeat.get("durationUnit"), "duration")
    if reading.unit is None or duration <= 0:
        problems.append(f"infusion duration '{fmt(duration)} {reading.written}' not understood")
        return None
    _note(reading, problems)
    return duration * reading.unit.factor


def read_frequency(dosage: Mapping[str, Any] | None, repeat: Mapping[str, Any], problems: list[str]) -> float | None:
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


def derive(dose: Dose | None, rate: InfusionRate | None, minutes: float | None) -> tuple[Dose | None, float | None]:
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
