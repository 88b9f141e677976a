"""Rewrites a draft ketamine MedicationRequest to the standard dose (the ``update`` suggestion's resource).

Only the dose, the infusion duration, the frequency when asked, and what would contradict them change;
everything else (id, status, intent, subject, route, reasons, extensions, other dosage fields) is carried over
untouched. Imports flow one way (``rules`` -> ``order``): the intent arrives as plain numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cds_service.order.units import UCUM, fmt

_DOSE_KEYS = ("doseQuantity", "doseRange")
_RATE_KEYS = ("rateQuantity", "rateRatio", "rateRange")
# Timing elements that would contradict "N times a week" once the frequency is rewritten.
_FREQUENCY_KEYS = ("frequency", "frequencyMax", "period", "periodMax", "periodUnit", "dayOfWeek")


def _number(value: float) -> int | float:
    """JSON number without a spurious ``.0`` (35 rather than 35.0); at most 3 decimals."""
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def rewrite_to_standard(
    resource: Mapping[str, Any], dose_mg: float, duration_minutes: float, per_week: int | None = None
) -> dict[str, Any]:
    """A deep copy of ``resource`` with ``dose_mg`` mg infused over ``duration_minutes`` minutes, ``per_week``
    times a week when given.

    * ``dosageInstruction[0].doseAndRate`` entry with the dose: ``doseQuantity`` set in UCUM ``mg`` (a
      ``doseRange`` is removed); a rate in that entry is recomputed in ``mg/h`` so that the pump setting
      matches the new dose and duration (no rate is added when the order had none);
    * ``timing.repeat.duration``/``durationUnit`` set to the standard duration in ``min``; a contradicting
      ``durationMax`` is removed;
    * with ``per_week``: ``timing.repeat`` frequency ``per_week`` per 1 ``wk``; what would contradict it
      (``frequencyMax``, ``periodMax``, the days of the week, a ``timing.code`` such as QD) is removed;
    * a free-text ``dosageInstruction[0].text`` would contradict the new dose: it is rewritten.
    """
    rewritten: dict[str, Any] = copy.deepcopy(dict(resource))
    instructions = rewritten.get("dosageInstruction")
    if not isinstance(instructions, list) or not instructions or not isinstance(instructions[0], dict):
        instructions = [{}] + (instructions[1:] if isinstance(instructions, list) else [])
        rewritten["dosageInstruction"] = instructions
    dosage: dict[str, Any] = instructions[0]

    entries = dosage.get("doseAndRate")
    if not isinstance(entries, list) or not entries:
        entries = [{}]
        dosage["doseAndRate"] = entries
    position = next(
        (i for i, e in enumerate(entries) if isinstance(e, dict) and any(k in e for k in _DOSE_KEYS + _RATE_KEYS)),
        0,
    )
    if not isinstance(entries[position], dict):
        entries[position] = {}
    entry: dict[str, Any] = entries[position]
    entry.pop("doseRange", None)
    entry["doseQuantity"] = {"value": _number(dose_mg), "unit": "mg", "system": UCUM, "code": "mg"}
    had_rate = any(entry.pop(k, None) is not None for k in _RATE_KEYS)
    if had_rate and duration_minutes > 0:
        per_hour = dose_mg / duration_minutes * 60
        entry["rateQuantity"] = {"value": _number(per_hour), "unit": "mg/h", "system": UCUM, "code": "mg/h"}

    timing = dosage.get("timing")
    if not isinstance(timing, dict):
        timing = {}
        dosage["timing"] = timing
    repeat = timing.get("repeat")
    if not isinstance(repeat, dict):
        repeat = {}
        timing["repeat"] = repeat
    repeat["duration"] = _number(duration_minutes)
    repeat["durationUnit"] = "min"
    repeat.pop("durationMax", None)
    text = f"{fmt(dose_mg)} mg over {fmt(duration_minutes)} minutes"
    if per_week is not None:
        for key in _FREQUENCY_KEYS:
            repeat.pop(key, None)
        timing.pop("code", None)
        repeat.update(frequency=per_week, period=1, periodUnit="wk")
        text += f", {per_week} times a week"

    if isinstance(dosage.get("text"), str):
        dosage["text"] = text
    return rewritten
