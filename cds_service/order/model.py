"""Typed view of the draft MedicationRequest that triggered the rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cds_service.record.model import Code, Recognition


class Drug(StrEnum):
    KETAMINE = "ketamine"
    ESKETAMINE = "esketamine"


class Route(StrEnum):
    INTRAVENOUS = "intravenous"
    INTRANASAL = "intranasal"
    OTHER = "other"  # IM, SC, oral...: no IV/intranasal dose rules apply
    UNSPECIFIED = "unspecified"  # ketamine with no route is read as IV (clinical-rules.md §0)


class OrderStage(StrEnum):
    """order-select fires before the order is complete; order-sign carries the full order."""

    SELECT = "order-select"
    SIGN = "order-sign"


class DoseUnit(StrEnum):
    MG = "mg"
    MG_PER_KG = "mg/kg"


@dataclass(frozen=True, slots=True)
class Dose:
    value: float
    unit: DoseUnit
    as_written: str  # e.g. "35 mg" or "0.5 mg/kg"


@dataclass(frozen=True, slots=True)
class InfusionRate:
    """Rate normalised to per-minute: mg/min, or mg/kg/min when weight-based."""

    per_minute: float
    weight_based: bool
    as_written: str  # e.g. "0.35 mg/kg/h"


@dataclass(frozen=True, slots=True)
class MedicationOrder:
    """The draft order the rules judge. ``reference`` is ``MedicationRequest/<id>`` when it has an id."""

    reference: str | None
    drug: Drug
    recognition: Recognition
    route: Route
    status: str | None
    dose: Dose | None
    rate: InfusionRate | None
    duration_minutes: float | None  # timing.repeat.duration, or derived from dose and rate
    frequency_per_week: float | None  # timing.repeat frequency/period normalised to a week
    reason_codes: tuple[Code, ...]
    reason_text: str | None
    problems: tuple[str, ...] = ()  # what could not be read, in plain words ("dose unit 'mL' not understood")
    stage: OrderStage = OrderStage.SIGN
    # reasonReference targets not resolvable inside the order (e.g. "Condition/123" on the problem list);
    # contained or in-bundle Conditions are already read into reason_codes/reason_text.
    reason_references: tuple[str, ...] = ()
    # Real-feed deviations read safely, in plain words for the summary ("the order's reason was sent as a
    # single entry, not a list: read as one"), and elements that could not be read at all and are not part
    # of the dose (those are ``problems``), named so that nothing is dropped in silence (clinical-rules.md §0).
    normalised: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    # the first planned administration: dosageInstruction[0].timing.repeat.boundsPeriod.start (None: not given)
    first_planned: datetime | None = None

    @property
    def is_iv_ketamine(self) -> bool:
        return self.drug is Drug.KETAMINE and self.route in (Route.INTRAVENOUS, Route.UNSPECIFIED)

    @property
    def is_intranasal_esketamine(self) -> bool:
        return self.drug is Drug.ESKETAMINE and self.route in (Route.INTRANASAL, Route.UNSPECIFIED)
