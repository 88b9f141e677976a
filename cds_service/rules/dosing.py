"""Shared dose arithmetic for the section 4-5 rules: the dosing weight, the order's mg/kg, the standard dose.

The weight gate (clinical-rules.md §4): a weight is *plausible* when the record did not flag it (30-300 kg,
``BodyWeight.plausible``) and, when an earlier plausible weight within ``weight.reference_days`` exists, it is
within ``weight.change_tolerance_pct`` of it. Only a plausible latest weight feeds the rewrite suggestion. The
dose check is protected too: with an implausible latest weight the mg/kg dose is computed with the latest and
the earlier plausible weight and the more cautious (higher) figure is used; with no plausible weight at all
the weight counts as not documented.

Pure functions over ``PatientRecord`` / ``MedicationOrder``; thresholds come from the knowledge base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import DoseUnit, MedicationOrder
from cds_service.order.units import fmt
from cds_service.record.model import BodyWeight, Evidence, PatientRecord

# Float noise guard for band comparisons (e.g. 36.75 mg / 70 kg must equal 0.525 mg/kg).
EPSILON = 1e-9
MINUTES_PER_HOUR = 60


def latest_weight(record: PatientRecord, kb: Knowledge, now: datetime) -> BodyWeight | None:
    """The newest dated body weight within ``weight.lookback_days`` of ``now`` (undated weights cannot count)."""
    cutoff = now - timedelta(days=kb.number("weight.lookback_days"))
    dated = [w for w in record.weights if w.when is not None and cutoff <= w.when <= now and w.kg > 0]
    return max(dated, key=lambda w: w.when or cutoff) if dated else None


def stale_weight(record: PatientRecord, kb: Knowledge, now: datetime) -> BodyWeight | None:
    """The newest weight outside the look-back window (shown when no recent weight exists)."""
    dated = [w for w in record.weights if w.when is not None and w.when <= now]
    newest = max(dated, key=lambda w: w.when or now) if dated else None
    return newest if newest is not None and latest_weight(record, kb, now) is None else None


def reference_weight(record: PatientRecord, kb: Knowledge, latest: BodyWeight) -> BodyWeight | None:
    """The newest plausible weight before ``latest`` and within ``weight.reference_days`` of it."""
    assert latest.when is not None
    since = latest.when - timedelta(days=kb.number("weight.reference_days"))
    earlier = [
        w for w in record.weights
        if w.when is not None and since <= w.when < latest.when and w.plausible and w.kg > 0
    ]  # fmt: skip
    return max(earlier, key=lambda w: w.when or since) if earlier else None


@dataclass(frozen=True)
class DosingWeight:
    """The weights the dose rules may use, and why the latest one may not feed a rewrite."""

    latest: BodyWeight | None  # newest within the look-back window (plausible or not)
    reference: BodyWeight | None  # earlier plausible weight within a year of the latest
    plausible: bool  # the latest may be used for the standard dose and the rewrite
    problem: str  # why not, in a prescriber's words ("" when plausible)

    @property
    def candidates(self) -> tuple[BodyWeight, ...]:
        """Weights the mg/kg dose is computed with: the latest when plausible; an implausible latest together
        with the earlier plausible weight; none when no plausible weight exists (not documented)."""
        if self.latest is None:
            return ()
        if self.plausible:
            return (self.latest,)
        return (self.latest, self.reference) if self.reference is not None else ()

    @property
    def documented(self) -> bool:
        return bool(self.candidates)

    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(w.evidence() for w in (self.latest, self.reference) if w is not None)


def dosing_weight(record: PatientRecord, kb: Knowledge, now: datetime) -> DosingWeight:
    latest = latest_weight(record, kb, now)
    if latest is None:
        return DosingWeight(None, None, False, "")
    reference = reference_weight(record, kb, latest)
    shown = f"{fmt(round(latest.kg, 1))} kg on {latest.when.date().isoformat() if latest.when else 'date unknown'}"
    if not latest.plausible:
        low, high = _plausible_range(kb)
        problem = f"the latest weight, {shown}, is implausible (outside {low}-{high} kg)"
        return DosingWeight(latest, reference, False, problem)
    if reference is not None:
        change = abs(latest.kg - reference.kg) / reference.kg * 100
        if change > kb.number("weight.change_tolerance_pct") + EPSILON:
            when = reference.when.date().isoformat() if reference.when else "date unknown"
            earlier = f"{fmt(round(reference.kg, 1))} kg on {when}"
            problem = (f"the latest weight, {shown}, differs by {fmt(round(change))}% from {earlier} "
                       "(a unit error, e.g. pounds typed as kg?)")  # fmt: skip
            return DosingWeight(latest, reference, False, problem)
    return DosingWeight(latest, reference, True, "")


def _plausible_range(kb: Knowledge) -> tuple[str, str]:
    """The range the record flags weights against (``weight.plausible_min_kg``/``_max_kg``, clinical-rules.md §10)."""
    return fmt(kb.number("weight.plausible_min_kg")), fmt(kb.number("weight.plausible_max_kg"))


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


def rate_mg_per_kg_per_h(order: MedicationOrder, weight_kg: float | None) -> float | None:
    """The infusion rate in mg/kg/h: the order's rate, else its dose over its duration."""
    if order.rate is not None and order.rate.per_minute > 0:
        if order.rate.weight_based:
            return order.rate.per_minute * MINUTES_PER_HOUR
        return order.rate.per_minute * MINUTES_PER_HOUR / weight_kg if weight_kg else None
    minutes = infusion_minutes(order, weight_kg)
    per_kg = order_mg_per_kg(order, weight_kg)
    if minutes is None or per_kg is None or minutes <= 0:
        return None
    return per_kg / minutes * MINUTES_PER_HOUR


@dataclass(frozen=True)
class IvDose:
    """Everything the IV dose rules compute once for an order.

    ``mg_per_kg``/``minutes``/``rate`` are the more cautious figures over the candidate weights (the highest
    mg/kg and rate, the shortest time); ``standard_mg`` only for a plausible latest weight (it feeds the
    rewrite).
    """

    weights: DosingWeight
    mg_per_kg: float | None
    dose_mg: float | None
    standard_mg: float | None
    minutes: float | None
    rate: float | None  # mg/kg/h

    @property
    def weight(self) -> BodyWeight | None:
        """The weight shown with the dose: the latest when plausible, else the one giving the cautious figure."""
        return self.weights.latest if self.weights.plausible else self._cautious_weight

    @property
    def _cautious_weight(self) -> BodyWeight | None:
        candidates = self.weights.candidates
        return min(candidates, key=lambda w: w.kg) if candidates else None

    def describe(self) -> str:
        """One line for the summary: the dose in mg and mg/kg, the standard dose for this weight, the time."""
        parts: list[str] = []
        if self.mg_per_kg is not None and self.dose_mg is not None:
            parts.append(f"{fmt(self.dose_mg)} mg = {fmt(self.mg_per_kg)} mg/kg")
        elif self.mg_per_kg is not None:
            parts.append(f"{fmt(self.mg_per_kg)} mg/kg")
        elif self.dose_mg is not None:
            parts.append(f"{fmt(self.dose_mg)} mg (mg/kg not calculable without a usable weight)")
        else:
            parts.append("no readable dose")
        weight = self.weight
        if weight is not None and self.standard_mg is not None:
            parts.append(f"standard for {fmt(round(weight.kg, 1))} kg: {fmt(self.standard_mg)} mg")
        elif weight is not None:
            parts.append(f"weight {fmt(round(weight.kg, 1))} kg")
        parts.append(f"over {fmt(self.minutes)} min" if self.minutes is not None else "infusion time not given")
        return ", ".join(parts)


def assess_iv(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> IvDose:
    weights = dosing_weight(record, kb, now)
    candidates = weights.candidates
    per_kg = [x for w in candidates if (x := order_mg_per_kg(order, w.kg)) is not None]
    minutes = [x for w in candidates if (x := infusion_minutes(order, w.kg)) is not None]
    rates = [x for w in candidates if (x := rate_mg_per_kg_per_h(order, w.kg)) is not None]
    latest = weights.latest if weights.plausible else None
    return IvDose(
        weights=weights,
        mg_per_kg=max(per_kg) if per_kg else order_mg_per_kg(order, None),
        dose_mg=order_dose_mg(order, latest.kg if latest is not None else None),
        standard_mg=standard_dose_mg(latest.kg, kb) if latest is not None else None,
        minutes=min(minutes) if minutes else infusion_minutes(order, None),
        rate=max(rates) if rates else rate_mg_per_kg_per_h(order, None),
    )
