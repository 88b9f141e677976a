"""Data needed before dosing (clinical-rules.md §8a): the one ``pre-dose-data-missing`` card.

Rules do not give a card of their own when data they need is missing: they return a ``MissingItem`` (and a
checklist line), and this module gathers every item into one warning card with one line and one suggestion per
item ("Record a PHQ-9", "Record vital signs", "Record body weight"). It replaces the retired
``depression-severity-undocumented``, ``blood-pressure-undocumented`` and ``weight-undocumented`` cards.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Evidence, PatientRecord
from cds_service.rules.findings import CreateAssessment, Finding, Indicator, MissingItem
from cds_service.rules.indication import data_problem, day

TOPIC = "pre-dose-data-missing"


def unique(items: Iterable[MissingItem]) -> tuple[MissingItem, ...]:
    """One item per key, the first rule's (rules run in the engine's order)."""
    seen: dict[str, MissingItem] = {}
    for item in items:
        seen.setdefault(item.key, item)
    return tuple(seen.values())


def pre_dose_finding(items: Iterable[MissingItem]) -> Finding | None:
    """The card for ``items``; None when nothing is missing."""
    found = unique(items)
    if not found:
        return None
    names = [item.what or item.key.replace("-", " ") for item in found]
    suggestions = tuple(
        dict.fromkeys(CreateAssessment(item.assessment) for item in found if item.assessment is not None)
    )
    return Finding(
        topic=TOPIC,
        indicator=Indicator.WARNING,
        facts={"items": _join(names), "count": str(len(found))},
        detail=tuple(f"- {item.line}" for item in found),
        audit=tuple(dict.fromkeys(e for item in found for e in item.evidence)),  # the lines already say them
        suggestions=suggestions,
        variant="default" if len(found) == 1 else "several",
    )


def blood_pressure_missing(record: PatientRecord, kb: Knowledge, now: datetime) -> MissingItem:
    """The item for "no blood pressure within ``bp.lookback_days``": the last reading, its value and date, and
    whether it was at or above the hold line (clinical-rules.md §8a)."""
    days = fmt(kb.number("bp.lookback_days"))
    line = f"No blood pressure in the last {days} days"
    older = max(
        (b for b in record.blood_pressures if b.when is not None and b.when <= now),
        key=lambda b: b.when or now,
        default=None,
    )
    evidence: tuple[Evidence, ...] = ()
    if older is not None:
        evidence = (older.evidence(),)
        line += f"; the last, {older.evidence().value} on {day(older.when)}"
        crit_s, crit_d = kb.number("bp.critical_systolic"), kb.number("bp.critical_diastolic")
        high = (older.systolic is not None and older.systolic >= crit_s) or (
            older.diastolic is not None and older.diastolic >= crit_d
        )
        line += f", was at or above {fmt(crit_s)}/{fmt(crit_d)}" if high and older.plausible else ""
    problem = data_problem(record, kinds.BLOOD_PRESSURE)
    if problem:
        line += f" (blood pressure could not be read completely: {problem})"
    return MissingItem("blood-pressure", line, "vital-signs", evidence, what="blood pressure")


def _join(names: list[str]) -> str:
    """"blood pressure", "blood pressure and body weight", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
