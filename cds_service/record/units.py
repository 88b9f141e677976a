"""Unit conversions the record needs: body weight to kg, durations and dosing periods to days, doses to mg.

UCUM codes first (terminology.md §9.5); a few unambiguous non-UCUM spellings real feeds send (``lb``,
``lbs``, ``days``, ``mmHg``) are read leniently. Anything else is "not understood" and the caller reports it.
"""

from __future__ import annotations

from typing import Final

LB_AV_KG: Final = 0.45359237  # 1 [lb_av] in kg (UCUM; terminology.md §6)

_WEIGHT_KG: Final = {
    "kg": 1.0,
    "g": 0.001,
    "[lb_av]": LB_AV_KG,
    "lb": LB_AV_KG,
    "lbs": LB_AV_KG,
    "[lb_us]": LB_AV_KG,
}
_DAYS: Final = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "wk": 7.0,
    "mo": 30.4375,  # UCUM mean month
    "a": 365.25,
}
_MASS_MG: Final = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}
_PRESSURE: Final = frozenset({"mm[hg]", "mmhg", "mm hg"})
# hCG concentration units to IU/L (clinical-rules.md §3): [IU]/L = IU/L = U/L = m[IU]/mL = mIU/mL (and mU/mL,
# the same quantity); [IU]/mL and IU/mL are x 1000. Matched case-insensitively: feeds write "mIU/ml", "miu/mL".
_HCG_IU_PER_L: Final = {
    "[iu]/l": 1.0,
    "iu/l": 1.0,
    "u/l": 1.0,
    "m[iu]/ml": 1.0,
    "miu/ml": 1.0,
    "mu/ml": 1.0,
    "[iu]/ml": 1000.0,
    "iu/ml": 1000.0,
}


def weight_to_kg(value: float, unit: str | None) -> float | None:
    """Body weight in kg, or None when the unit is not a weight unit this service understands."""
    if unit is None:
        return None
    factor = _WEIGHT_KG.get(unit) or _WEIGHT_KG.get(unit.lower())
    return value * factor if factor else None


# A supply or a dosing period longer than a century is not a clinical duration, and added to a record's date
# (years 1000-8999, ``record.dates``) it would leave the calendar.
MAX_DURATION_DAYS: Final = 36_500.0


def bounded_days(days: float) -> float | None:
    """``days`` when it is a duration a record can hold (at most ``MAX_DURATION_DAYS``), else None."""
    return days if abs(days) <= MAX_DURATION_DAYS else None


def duration_days(value: float, unit: str | None) -> float | None:
    """A duration (expectedSupplyDuration, Timing period) in days; None when the unit is not a time unit or
    the duration is longer than ``MAX_DURATION_DAYS``."""
    if unit is None:
        return None
    factor = _DAYS.get(unit) or _DAYS.get(unit.lower())
    return bounded_days(value * factor) if factor else None


def mass_to_mg(value: float, unit: str | None) -> float | None:
    """A dose amount in mg; None when the unit is not a mass unit (tablets, mL, ...)."""
    if unit is None:
        return None
    factor = _MASS_MG.get(unit) or _MASS_MG.get(unit.lower())
    return value * factor if factor else None


def is_mm_hg(unit: str | None) -> bool:
    """True for mm[Hg] and its common non-UCUM spellings; a missing unit is accepted (BP has one unit)."""
    return unit is None or unit.lower() in _PRESSURE


def hcg_iu_per_l_factor(unit: str | None) -> float | None:
    """The factor that turns an hCG value in ``unit`` into IU/L; None when the unit is missing or not read."""
    if unit is None:
        return None
    return _HCG_IU_PER_L.get(unit.strip().lower().replace(" ", ""))
