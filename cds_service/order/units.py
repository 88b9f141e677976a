"""UCUM units the order parser understands (terminology.md §9.5), with the conversions it needs.

Dose, rate, volume and time units of the *order*; body weight units are read by the record builder
(``record/units.py``), which hands the rules a weight in kg.

UCUM codes are case-sensitive: ``mg`` is milligram, ``ML`` is megalitre (a known data-entry trap) and
``mcg``/``hr`` are not UCUM at all. Choice documented here and in the cards:

* a handful of unambiguous non-UCUM spellings that real EHR feeds send (``mcg``, ``hr``, ``hrs``, ``days``,
  ``ml``...) are read *leniently* as the unit they can only mean, and the parser records a note
  ("dose unit 'mcg' read as 'ug'") that the cards show. Refusing them would turn ordinary orders into
  "dose unreadable" cards, which is noise, while reading them cannot change a dose's value;
* anything else that is not one of the codes below (``ML``, ``MG``, ``units``, ``tab``...) is not
  guessed: the caller reports it as a problem and the dose is treated as unreadable.

Unit text without a UCUM code (``Quantity.unit`` only) is matched case-insensitively against the same
spellings, because ``unit`` is a display string, not a code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from cds_service.record.fhirdata import usable_number

UCUM: Final = "http://unitsofmeasure.org"


class Dimension(StrEnum):
    MASS = "mass"  # factor: mg
    MASS_PER_WEIGHT = "mass/weight"  # factor: mg/kg
    VOLUME = "volume"  # factor: mL
    TIME = "time"  # factor: minutes
    MASS_RATE = "mass/time"  # factor: mg/min
    MASS_PER_WEIGHT_RATE = "mass/weight/time"  # factor: mg/kg/min
    VOLUME_RATE = "volume/time"  # factor: mL/min


@dataclass(frozen=True, slots=True)
class Unit:
    """A recognised unit: its dimension and the factor to the dimension's base (mg, mg/kg, min, kg, mL...)."""

    code: str  # the canonical UCUM code
    dimension: Dimension
    factor: float


_MASS_MG: Final = {"ug": 0.001, "mg": 1.0, "g": 1000.0}
_TIME_MIN: Final = {
    "s": 1 / 60,
    "min": 1.0,
    "h": 60.0,
    "d": 1440.0,
    "wk": 10080.0,
    "mo": 43830.0,  # UCUM mean Julian month (30.4375 d)
    "a": 525960.0,  # UCUM mean Julian year (365.25 d)
}
_VOLUME_ML: Final = {"mL": 1.0, "L": 1000.0}


def _build_dose_units() -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for mass, mg in _MASS_MG.items():
        units[mass] = Unit(mass, Dimension.MASS, mg)
        units[f"{mass}/kg"] = Unit(f"{mass}/kg", Dimension.MASS_PER_WEIGHT, mg)
        for time, minutes in _TIME_MIN.items():
            if time in ("s", "min", "h", "d"):
                units[f"{mass}/{time}"] = Unit(f"{mass}/{time}", Dimension.MASS_RATE, mg / minutes)
                units[f"{mass}/kg/{time}"] = Unit(
                    f"{mass}/kg/{time}", Dimension.MASS_PER_WEIGHT_RATE, mg / minutes
                )
    for vol, ml in _VOLUME_ML.items():
        units[vol] = Unit(vol, Dimension.VOLUME, ml)
        for time in ("min", "h"):
            units[f"{vol}/{time}"] = Unit(f"{vol}/{time}", Dimension.VOLUME_RATE, ml / _TIME_MIN[time])
    return units


DOSE_UNITS: Final[Mapping[str, Unit]] = _build_dose_units()
TIME_UNITS: Final[Mapping[str, Unit]] = {k: Unit(k, Dimension.TIME, v) for k, v in _TIME_MIN.items()}

# Non-UCUM spellings read leniently (see module docstring): token -> UCUM token. Applied per "/"-separated part.
_LENIENT_TOKENS: Final = {
    "mcg": "ug",
    "µg": "ug",
    "μg": "ug",
    "ml": "mL",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
    "day": "d",
    "days": "d",
    "week": "wk",
    "weeks": "wk",
}


@dataclass(frozen=True, slots=True)
class UnitReading:
    """Result of reading a unit: ``unit`` None when not understood; ``note`` set when read leniently."""

    unit: Unit | None
    written: str
    note: str | None = None


def read_unit(quantity: Mapping[str, Any], table: Mapping[str, Unit], what: str) -> UnitReading:
    """Read ``Quantity.code`` (UCUM, case-sensitive) or, without a code, ``Quantity.unit`` (case-insensitive)."""
    code = quantity.get("code")
    text = quantity.get("unit")
    system = quantity.get("system")
    if isinstance(code, str) and code and (system in (None, UCUM)):
        return _read_token(code, table, what, case_sensitive=True)
    if isinstance(text, str) and text.strip():
        return _read_token(text.strip(), table, what, case_sensitive=False)
    if isinstance(code, str) and code:
        return UnitReading(None, code)
    return UnitReading(None, "")


def read_time_code(code: object, what: str) -> UnitReading:
    """Read a ``Timing`` unit code (UnitsOfTime: s, min, h, d, wk, mo, a)."""
    if not isinstance(code, str) or not code:
        return UnitReading(None, "")
    return _read_token(code, TIME_UNITS, what, case_sensitive=True)


def _read_token(written: str, table: Mapping[str, Unit], what: str, *, case_sensitive: bool) -> UnitReading:
    if written in table:
        return UnitReading(table[written], written)
    if not case_sensitive:
        low = {k.lower(): v for k, v in table.items()}
        if written.lower() in low:
            return UnitReading(low[written.lower()], written)
    parts = written.split("/")
    mapped = [_LENIENT_TOKENS.get(p if case_sensitive else p.lower(), p) for p in parts]
    candidate = "/".join(mapped)
    if candidate != written and candidate in table:
        unit = table[candidate]
        return UnitReading(unit, written, f"{what} unit '{written}' is not UCUM; read as '{unit.code}'")
    return UnitReading(None, written)


def quantity_value(quantity: Mapping[str, Any]) -> float | None:
    """A usable numeric ``Quantity.value`` (``record.fhirdata.usable_number``: no bools, strings, NaN,
    infinities or values beyond 1e-9..1e9 in size), else None."""
    return usable_number(quantity.get("value"))


def fmt(value: float) -> str:
    """A number as a clinician writes it: no trailing zeros, at most 3 decimals."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"
