"""Completed ketamine and esketamine administrations (MedicationAdministration), with the dose given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.knowledge.model import Knowledge
from cds_service.record.dates import effective_time
from cds_service.record.fhirdata import (
    resource_id,
    usable_number,
)
from cds_service.record.medications.resolver import ResolvedMedication
from cds_service.record.model import Administration
from cds_service.record.units import mass_to_mg


def administration(resource: Mapping[str, Any], med: ResolvedMedication, kb: Knowledge) -> list[Administration]:
    """A completed ketamine/esketamine MedicationAdministration; [] for anything else."""
    if resource.get("status") != "completed":
        return []
    out = []
    dose_mg, dose_mg_per_kg = _administered_dose(resource)
    for ingredient in med.ingredients:
        info = kb.medications.ingredients.get(ingredient)
        if info and info.roles & {"ketamine", "esketamine"}:
            out.append(
                Administration(resource_id(resource), effective_time(resource), ingredient, dose_mg, dose_mg_per_kg)
            )
    return out


def _administered_dose(resource: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``dosage.dose`` as (mg, mg/kg); (None, None) when absent or in another unit (never guessed)."""
    dosage = resource.get("dosage")
    dose = dosage.get("dose") if isinstance(dosage, Mapping) else None
    value = usable_number(dose.get("value")) if isinstance(dose, Mapping) else None
    if dose is None or value is None:
        return None, None
    unit = dose.get("code") or dose.get("unit")
    if isinstance(unit, str) and unit.replace(" ", "").lower() in ("mg/kg", "mg/kg{dose}"):
        return None, value
    mg = mass_to_mg(value, unit if isinstance(unit, str) else None)
    return mg, None
