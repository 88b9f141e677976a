"""Rewrites a draft ketamine MedicationRequest to the standard dose (the ``update`` suggestion's resource).

Only the dose, the infusion duration and what would contradict them change; everything else (id, status,
intent, subject, route, reasons, extensions, other dosage fields) is carried over untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cds_service.order.units import UCUM, fmt
from cds_service.rules.findings import RewriteDose

_DOSE_KEYS = ("doseQuantity", "doseRange")
_RATE_KEYS = ("rateQuantity", "rateRatio", "rateRange")


def _number(value: float) -> int | float:
    """JSON number without a spurious ``.0`` (35 rather than 35.0); at most 3 decimals."""
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def rewrite_to_standard(resource: Mapping[str, Any], intent: RewriteDose) -> dict[str, Any]:
    """A deep copy of ``resource`` with ``intent.dose_mg`` mg infused over ``intent.duration_minutes`` minutes.

    * ``dosageInstruction[0].doseAndRate`` entry with the dose: ``doseQuantity`` set in UCUM ``mg`` (a
      ``doseRange`` is removed); a rate in that entry is recomputed in ``mg/h`` so that the pump setting
      matches the new dose and duration (no rate is added when the order had none);
    * ``timing.repeat.duration``/``durationUnit`` set to the standard duration in ``min``; a contradicting
      ``durationMax`` is removed;
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
    entry["doseQuantity"] = {"value": _number(intent.dose_mg), "unit": "mg", "system": UCUM, "code": "mg"}
    had_rate = any(entry.pop(k, None) is not None for k in _RATE_KEYS)
    if had_rate and intent.duration_minutes > 0:
        per_hour = intent.dose_mg / intent.duration_minutes * 60
        entry["rateQuantity"] = {"value": _number(per_hour), "unit": "mg/h", "system": UCUM, "code": "mg/h"}

    timing = dosage.get("timing")
    if not isinstance(timing, dict):
        timing = {}
        dosage["timing"] = timing
    repeat = timing.get("repeat")
    if not isinstance(repeat, dict):
        repeat = {}
        timing["repeat"] = repeat
    repeat["duration"] = _number(intent.duration_minutes)
    repeat["durationUnit"] = "min"
    repeat.pop("durationMax", None)

    if isinstance(dosage.get("text"), str):
        dosage["text"] = f"{fmt(intent.dose_mg)} mg over {fmt(intent.duration_minutes)} minutes"
    return rewritten
