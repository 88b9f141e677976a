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
from pydantic import BaseModel, ValidationError

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
# Elements whose validated instances are not reused (contained resources are whole resources).
_NOT_REUSED: frozenset[str] = frozenset({"contained"})


def validate(resource: Mapping[str, Any]) -> SkippedResource | None:
    """None when the elements the record reads are valid FHIR R4 (R4B model); else why it is skipped."""
    return Validator().validate(resource)


class Validator:
    """Validates resources for one record build, reusing the elements it has already validated in it.

    Records repeat the same elements many times (medication concept, dosage, timing, subject reference,
    vital-sign component code, units). Once a resource is valid, the instances of its complex elements are
    remembered by element path and raw JSON text; a later resource with an identical element at the same
    path gets the validated instance in place of the raw dict (pydantic accepts a model instance without
    validating it again). FHIR element models are context-free, so the outcome, including the problem text
    of an invalid resource, is the one a fresh validation gives. The memo lives as long as this object (one
    record build, i.e. one request): nothing is shared between requests.
    """

    def __init__(self) -> None:
        self._elements: dict[tuple[str, str], Any] = {}

    def validate(self, resource: Mapping[str, Any]) -> SkippedResource | None:
        """None when the elements the record reads are valid; else why the resource is skipped."""
        rtype = str(resource.get("resourceType"))
        model = _MODELS.get(rtype)
        if model is None:
            return None
        read = _READ_ELEMENTS[rtype]
        trimmed: dict[str, Any] = {}
        plans: dict[str, _Plan] = {}
        for name, value in resource.items():
            if name in read and name not in _NOT_REUSED and isinstance(value, dict | list):
                trimmed[name], plans[name] = self._reuse(f"{rtype}.{name}", value)
            elif name in read or name in ("resourceType", "id"):
                trimmed[name] = value
        try:
            instance = model.model_validate(trimmed)
        except ValidationError as exc:
            return SkippedResource(rtype, resource_id(resource), _describe(exc))
        except (ValueError, TypeError) as exc:  # fhir.resources raises these for some malformed primitives
            return SkippedResource(rtype, resource_id(resource), f"not valid FHIR ({type(exc).__name__})")
        for name, plan in plans.items():
            self._remember(f"{rtype}.{name}", getattr(instance, name, None), plan)
        return None

    def _reuse(self, path: str, value: Any) -> tuple[Any, _Plan]:
        """The value with already-validated elements replaced by their instances, and how to remember it."""
        if isinstance(value, dict):
            key = repr(value)
            known = self._elements.get((path, key))
            if known is not None:
                return known, None
            rebuilt: dict[str, Any] = {}
            children: dict[str, _Plan] = {}
            for name, child in value.items():
                if isinstance(child, dict | list) and not name.startswith("_"):
                    rebuilt[name], children[name] = self._reuse(f"{path}.{name}", child)
                else:
                    rebuilt[name] = child
            return rebuilt, (key, children)
        if isinstance(value, list):
            items: list[Any] = []
            plans: list[_Plan] = []
            for item in value:
                new_item, plan = self._reuse(path + "[]", item)  # an item is not the array's own type
                items.append(new_item)
                plans.append(plan)
            return items, plans
        return value, None

    def _remember(self, path: str, element: Any, plan: _Plan) -> None:
        if plan is None or element is None:
            return
        if isinstance(plan, list):
            if isinstance(element, list) and len(element) == len(plan):
                for item, item_plan in zip(element, plan, strict=True):
                    self._remember(path + "[]", item, item_plan)
            return
        if not isinstance(element, BaseModel):
            return
        key, children = plan
        self._elements[(path, key)] = element
        for name, child_plan in children.items():
            self._remember(f"{path}.{name}", getattr(element, name, None), child_plan)


# How a raw element was rebuilt: None (reused or scalar), (raw text, plans of child elements) for an
# object, one plan per item for an array.
_Plan = tuple[str, dict[str, "_Plan"]] | list["_Plan"] | None


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
