"""Reads a ketamine/esketamine MedicationRequest (found by ``recognition.find_ketamine_requests``) into a
``MedicationOrder``: the medication (``recognition``), the dosage (``dosage``: route, dose, rate, duration,
frequency) and the reasons. What it cannot read of the dose goes into ``MedicationOrder.problems`` in plain
words: never a guess, never an exception.

Real clients break FHIR's letter (clinical-rules.md §0): a single object where FHIR has a list (the CDS
Hooks sandbox sends ``reasonCode: {...}``) is read as a one-element list and said in
``MedicationOrder.normalised``; an element that cannot be read at all is named in ``unreadable`` (or, for
the dosage, in ``problems``), never dropped in silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.order.dosage import (
    Reading,
    concentration_mg_per_ml,
    derive,
    read_dose,
    read_duration,
    read_frequency,
    read_rate,
    read_route,
    repeat_of,
)
from cds_service.order.model import MedicationOrder, OrderStage
from cds_service.order.recognition import ketamine_index, recognise_request, resolve_reference
from cds_service.record.dates import parse_fhir_datetime
from cds_service.record.fhirdata import coding_maps
from cds_service.record.model import Code


class NotAKetamineOrder(ValueError):
    """``parse_order`` was given a MedicationRequest whose medication is not ketamine or esketamine."""


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
        condition = resolve_reference(target, request, draft_orders, "Condition")
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
    source = recognise_request(resource, draft_orders, ketamine_index(kb))
    if source is None:
        raise NotAKetamineOrder("the MedicationRequest is not for ketamine or esketamine")
    problems: list[str] = []
    notes = _Notes()
    dosages = notes.listed(resource.get("dosageInstruction"), "the dosage instruction", into=problems)
    dosage = dosages[0] if dosages else None
    if len(dosages) > 1:
        problems.append(f"only the first of {len(dosages)} dosage instructions was checked")
    route = read_route(dosage, problems, kb.routes)

    reading = Reading(problems, concentration_mg_per_ml(source.medication))
    entries = dosage.get("doseAndRate") if dosage else None
    dose_and_rates = notes.listed(entries, "the dose and rate", into=problems)
    used = [e for e in dose_and_rates if any(k in e for k in _FIRST_WITH_DOSE)]
    if len(used) > 1:
        problems.append(f"only the first of {len(used)} dose/rate entries was checked")
    dose = rate = None
    if used:
        dose = read_dose(used[0], reading)
        rate = read_rate(used[0], reading)
    repeat = repeat_of(dosage)
    minutes = read_duration(repeat, problems)
    frequency = read_frequency(dosage, repeat, problems)
    dose, minutes = derive(dose, rate, minutes)
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
