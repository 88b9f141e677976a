"""Shared dose arithmetic for the section 4-5 rules: weight for dosing, mg/kg of the order, standard dose.

Pure functions over ``PatientRecord`` / ``MedicationOrder``; thresholds come from the knowledge base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import DoseUnit, MedicationOrder
from cds_service.order.units import fmt
from cds_service.record.model import BodyWeight, PatientRecord

# Float noise guard for band comparisons (e.g. 36.75 mg / 70 kg must equal 0.525 mg/kg).
EPSILON = 1e-9


def clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (card summaries stay under 140)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:(")
    return cut + "…"


def latest_weight(record: PatientRecord, kb: Knowledge, now: datetime) -> BodyWeight | None:
    """The newest dated body weight within ``weight.lookback_days`` of ``now`` (undated weights cannot count)."""
    cutoff = now - timedelta(days=kb.number("weight.lookback_days"))
    dated = [w for w in record.weights if w.when is not None and w.when >= cutoff and w.kg > 0]
    return max(dated, key=lambda w: w.when or cutoff) if dated else None


def stale_weight(record: PatientRecord, kb: Knowledge, now: datetime) -> BodyWeight | None:
    """The newest weight outside the look-back window (shown when no recent weight exists)."""
    dated = [w for w in record.weights if w.when is not None]
    newest = max(dated, key=lambda w: w.when or now) if dated else None
    return newest if newest is not None and latest_weight(record, kb, now) is None else None


def round_dose(mg: float, kb: Knowledge) -> float:
    """Round half up to ``iv.dose_rounding_mg`` (1 mg by default)."""
    step = kb.number("iv.dose_rounding_mg")
    if step <= 0:
        return mg
    return math.floor(mg / step + 0.5 + EPSILON) * step


def standard_dose_mg(weight_kg: float, kb: Knowledge) -> float:
    """``iv.standard_mg_per_kg`` x weight, rounded."""
    return round_dose(kb.number("iv.standard_mg_per_kg") * weight_kg, kb)


def order_mg_per_kg(order: MedicationOrder, weight_kg: float | None) -> float | None:
    """The order's dose in mg/kg: as written for a mg/kg dose, else mg divided by the weight."""
    if order.dose is None:
        return None
    if order.dose.unit is DoseUnit.MG_PER_KG:
        return order.dose.value
    return order.dose.value / weight_kg if weight_kg else None


def order_dose_mg(order: MedicationOrder, weight_kg: float | None) -> float | None:
    """The order's dose in mg: as written for a mg dose, else mg/kg times the weight."""
    if order.dose is None:
        return None
    if order.dose.unit is DoseUnit.MG:
        return order.dose.value
    return order.dose.value * weight_kg if weight_kg else None


def infusion_minutes(order: MedicationOrder, weight_kg: float | None) -> float | None:
    """Infusion time: as parsed, or dose / rate when one is weight-based and the other not (needs the weight)."""
    if order.duration_minutes is not None:
        return order.duration_minutes
    if order.rate is None or order.dose is None or not weight_kg or order.rate.per_minute <= 0:
        return None
    mg = order_dose_mg(order, weight_kg)
    per_minute_mg = order.rate.per_minute * weight_kg if order.rate.weight_based else order.rate.per_minute
    return mg / per_minute_mg if mg is not None else None


@dataclass(frozen=True)
class IvDose:
    """Everything the IV dose rules compute once for an order."""

    weight: BodyWeight | None
    mg_per_kg: float | None
    dose_mg: float | None
    standard_mg: float | None
    minutes: float | None

    def describe(self) -> str:
        """One line for the summary: calculated mg/kg, standard dose for this weight, infusion time."""
        parts: list[str] = []
        if self.mg_per_kg is not None and self.dose_mg is not None:
            parts.append(f"ordered {fmt(self.dose_mg)} mg = {fmt(self.mg_per_kg)} mg/kg")
        elif self.mg_per_kg is not None:
            parts.append(f"ordered {fmt(self.mg_per_kg)} mg/kg")
        elif self.dose_mg is not None:
            parts.append(f"ordered {fmt(self.dose_mg)} mg (mg/kg not calculable without a recent weight)")
        else:
            parts.append("no readable dose")
        if self.weight is not None and self.standard_mg is not None:
            parts.append(f"standard for {fmt(self.weight.kg)} kg: {fmt(self.standard_mg)} mg")
        parts.append(f"over {fmt(self.minutes)} min" if self.minutes is not None else "infusion time not given")
        return "; ".join(parts)


def assess_iv(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> IvDose:
    weight = latest_weight(record, kb, now)
    kg = weight.kg if weight else None
    return IvDose(
        weight=weight,
        mg_per_kg=order_mg_per_kg(order, kg),
        dose_mg=order_dose_mg(order, kg),
        standard_mg=standard_dose_mg(kg, kb) if kg else None,
        minutes=infusion_minutes(order, kg),
    )
