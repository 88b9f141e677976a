"""Structural validation of the FHIR resources the rules read, with fhir.resources R4B models.

Only resources that passed the cheap raw pre-filter come here (~0.1 ms each). A resource that fails is
reported as a ``SkippedResource`` whose problem names the element and the kind of error, never a value
(values may be PHI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from cds_service.record.fhirdata import resource_id
from cds_service.record.model import SkippedResource

_MODELS: dict[str, type[FHIRResourceModel]] = {
    "Patient": Patient,
    "Condition": Condition,
    "Observation": Observation,
    "Medication": Medication,
    "MedicationStatement": MedicationStatement,
    "MedicationRequest": MedicationRequest,
    "MedicationAdministration": MedicationAdministration,
}
_MAX_PROBLEM = 160
# Elements the record reads (plus what R4 requires): only these are validated, so narrative, extensions,
# identifiers and other elements the rules never read cannot cost time or cause a skip.
_READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"birthDate", "gender"}),
    "Condition": frozenset(
        {"subject", "code", "clinicalStatus", "verificationStatus", "onsetDateTime", "onsetPeriod",
         "abatementDateTime", "abatementPeriod", "recordedDate"}
    ),
    "Observation": frozenset(
        {"status", "code", "subject", "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued",
         "valueQuantity", "valueInteger", "valueCodeableConcept", "valueString", "interpretation", "component"}
    ),
    "Medication": frozenset({"code", "ingredient"}),
    "MedicationStatement": frozenset(
        {"status", "subject", "medicationCodeableConcept", "medicationReference", "effectiveDateTime",
         "effectivePeriod", "dosage", "contained"}
    ),
    "MedicationRequest": frozenset(
        {"status", "intent", "subject", "medicationCodeableConcept", "medicationReference", "authoredOn",
         "dispenseRequest", "dosageInstruction", "contained"}
    ),
    "MedicationAdministration": frozenset(
        {"status", "subject", "medicationCodeableConcept", "medicationReference", "effectiveDateTime",
         "effectivePeriod", "contained"}
    ),
}  # fmt: skip


def validate(resource: Mapping[str, Any]) -> SkippedResource | None:
    """None when the elements the record reads are valid FHIR R4 (R4B model); else why it is skipped."""
    rtype = str(resource.get("resourceType"))
    model = _MODELS.get(rtype)
    if model is None:
        return None
    read = _READ_ELEMENTS[rtype]
    trimmed = {k: v for k, v in resource.items() if k in read or k in ("resourceType", "id")}
    try:
        model.model_validate(trimmed)
    except ValidationError as exc:
        return SkippedResource(rtype, resource_id(resource), _describe(exc))
    except (ValueError, TypeError) as exc:  # fhir.resources raises these for some malformed primitives
        return SkippedResource(rtype, resource_id(resource), f"not valid FHIR ({type(exc).__name__})")
    return None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    if not errors:
        return "not valid FHIR"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(resource)"
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ").rstrip(".")
    text = f"{where}: {msg}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text[:_MAX_PROBLEM]
