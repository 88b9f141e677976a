"""Structural validation of the FHIR resources the rules read, with fhir.resources R4B models.

Only resources that passed the cheap raw pre-filter come here (25-75 µs each, most of it in the models'
own validators). A resource that fails is reported as a ``SkippedResource`` whose problem names the
element and the kind of error, never a value (values may be PHI).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cds_service.record.fhirdata import content_key, resource_id
from cds_service.record.model import SkippedResource

_MODELS: dict[str, type[FHIRResourceModel]] = {
    "Patient": Patient,
    "Condition": Condition,
    "Observation": Observation,
    "Medication": Medication,
    "MedicationStatement": MedicationStatement,
    "MedicationRequest": MedicationRequest,
    "MedicationAdministration": MedicationAdministration,
    "AllergyIntolerance": AllergyIntolerance,
    "Procedure": Procedure,
}
_MAX_PROBLEM = 160
# Elements the record reads (plus what R4 requires): only these are validated, so narrative, extensions,
# identifiers and other elements the rules never read cannot cost time or cause a skip (Observation.subject
# is neither read nor required).
_READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"birthDate", "gender"}),
    "Condition": frozenset(
        {"subject", "code", "clinicalStatus", "verificationStatus", "onsetDateTime", "onsetPeriod",
         "abatementDateTime", "abatementPeriod", "recordedDate"}
    ),
    "Observation": frozenset(
        {"status", "code", "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued", "valueQuantity",
         "valueInteger", "valueCodeableConcept", "valueString", "interpretation", "component"}
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
         "effectivePeriod", "contained", "dosage"}
    ),
    "AllergyIntolerance": frozenset(
        {"patient", "code", "clinicalStatus", "verificationStatus", "type", "reaction", "recordedDate",
         "onsetDateTime"}
    ),
    "Procedure": frozenset({"status", "subject", "code", "performedDateTime", "performedPeriod"}),
}  # fmt: skip
# Elements whose validated instances are not reused (contained resources are whole resources).
_NOT_REUSED: frozenset[str] = frozenset({"contained"})
# Elements of the same FHIR type in different resources, whose validated instances are reused across them
# (a MedicationStatement usually repeats the dosage and drug of a MedicationRequest).
_SHARED: dict[str, dict[str, str]] = {
    "MedicationRequest": {"dosageInstruction": "Dosage[]", "medicationCodeableConcept": "CodeableConcept"},
    "MedicationStatement": {"dosage": "Dosage[]", "medicationCodeableConcept": "CodeableConcept"},
    "MedicationAdministration": {"medicationCodeableConcept": "CodeableConcept"},
}


def validate(resource: Mapping[str, Any]) -> SkippedResource | None:
    """None when the elements the record reads are valid FHIR R4 (R4B model); else why it is skipped."""
    return Validator().validate(resource)


class Validator:
    """Validates resources for one record build, reusing the elements it has already validated in it.

    Records repeat the same elements many times (medication concept, dosage, timing, subject reference,
    vital-sign component code, units). Once a resource is valid, the instances of its complex elements are
    remembered by element path and exact content (``fhirdata.content_key``); a later resource with an
    identical element at the same path gets the validated instance in place of the raw dict (pydantic
    accepts a model instance without validating it again). FHIR element models are context-free, so the
    outcome, including the problem text of an invalid resource, is the one a fresh validation gives. The
    memo lives as long as this object (one record build, i.e. one request): nothing is shared between
    requests.
    """

    def __init__(self) -> None:
        self._roots: dict[str, _Path] = {}  # by resource type
        self._shared: dict[str, _Path] = {}  # by the names in _SHARED

    def validate(self, resource: Mapping[str, Any]) -> SkippedResource | None:
        """None when the elements the record reads are valid; else why the resource is skipped."""
        error = self._check(resource)
        return None if error is None else _skipped(resource, error)

    def validate_repairing(
        self,
        resource: Mapping[str, Any],
        repair: Callable[[Mapping[str, Any], Sequence[ErrorDetails]], Mapping[str, Any] | None],
        rounds: int,
    ) -> tuple[Mapping[str, Any], SkippedResource | None]:
        """``validate``, letting ``repair`` mend what the errors point at (up to ``rounds`` times).

        Returns the resource as validated (the repaired copy, or ``resource`` itself when nothing needed
        repair) and None, or the resource and why it is skipped when what is left cannot be repaired.
        """
        if self.validate(resource) is None:  # the usual case, through the one per-resource entry point
            return resource, None
        for _ in range(rounds):
            error = self._check(resource)
            if error is None:
                return resource, None
            repaired = repair(resource, _errors(error)) if isinstance(error, ValidationError) else None
            if repaired is None:
                return resource, _skipped(resource, error)
            resource = repaired
        error = self._check(resource)
        return resource, None if error is None else _skipped(resource, error)

    def _check(self, resource: Mapping[str, Any]) -> Exception | None:
        """The validation error of the elements the record reads, or None when they are valid."""
        rtype = str(resource.get("resourceType"))
        model = _MODELS.get(rtype)
        if model is None:
            return None
        read = _READ_ELEMENTS[rtype]
        root = self._roots.get(rtype)
        if root is None:
            root = self._roots[rtype] = _Path()
            for name, shared in _SHARED.get(rtype, {}).items():
                root.share(name, self._shared.setdefault(shared, _Path()))
        trimmed: dict[str, Any] = {}
        plans: dict[str, _Plan] = {}
        for name, value in resource.items():
            if name in read:
                if isinstance(value, (dict, list)) and name not in _NOT_REUSED:
                    trimmed[name], plan = _reuse(root.below(name), value)
                    if plan is not None:
                        plans[name] = plan
                else:
                    trimmed[name] = value
            elif name == "resourceType" or name == "id":
                trimmed[name] = value
        try:
            # Calling the model is model_validate minus a second pass of its after-validators (FHIR models
            # define __init__, which model_validate calls and then re-checks): the same checks and errors.
            instance = model(**trimmed)
        except (ValueError, TypeError) as exc:  # ValidationError, or what fhir.resources raises for primitives
            return exc
        for name, plan in plans.items():
            _remember(root.below(name), getattr(instance, name, None), plan)
        return None


class _Path:
    """The memo of one element path (e.g. MedicationRequest.dosageInstruction[].timing): the validated
    instances seen there by content, and the paths below it."""

    __slots__ = ("_below", "_items", "known", "model")

    def __init__(self) -> None:
        self.known: dict[bytes, Any] = {}
        self.model: type[BaseModel] | None = None  # the element model here, once an instance is known
        self._below: dict[str, _Path] = {}
        self._items: _Path | None = None

    def below(self, name: str) -> _Path:
        path = self._below.get(name)
        if path is None:
            path = self._below[name] = _Path()
        return path

    def share(self, name: str, path: _Path) -> None:
        """Make ``path`` the one below this one at ``name`` (an element of the same type elsewhere)."""
        self._below[name] = path

    def items(self) -> _Path:
        """The path of this array's items (an item is not the array's own type)."""
        if self._items is None:
            self._items = _Path()
        return self._items


def _reuse(path: _Path, value: Any) -> tuple[Any, _Plan]:
    """The element (an object or an array) if already validated here, else rebuilt with the parts that
    were, and how to remember it once it is valid (None: nothing to remember)."""
    key = content_key(value)
    if key is None:  # not plain JSON: validated as it is, never reused
        return value, None
    known = path.known.get(key)
    if known is not None:
        return known, None
    if isinstance(value, dict):
        rebuilt: dict[str, Any] = {}
        below: dict[str, _Plan] = {}
        for name, child in value.items():
            if isinstance(child, (dict, list)) and not name.startswith("_"):
                rebuilt[name], plan = _reuse(path.below(name), child)
                if plan is not None:
                    below[name] = plan
            else:
                rebuilt[name] = child
        model = path.model
        if model is not None:  # validate it here, as its resource would (a second validation pass skipped)
            try:
                instance = model(**rebuilt)
            except (ValidationError, ValueError, TypeError):
                pass  # left to its resource, which names the problem where it sits
            else:
                path.known[key] = instance
                for name, child_plan in below.items():
                    _remember(path.below(name), getattr(instance, name, None), child_plan)
                return instance, None
        return rebuilt, (key, below)
    item_path = path.items()  # an item is not the array's own type
    items: list[Any] = []
    plans: list[_Plan] = []
    whole = True  # an array of objects only is remembered as a whole (its items are model instances)
    for item in value:
        if isinstance(item, (dict, list)):
            whole = whole and isinstance(item, dict)
            item, plan = _reuse(item_path, item)
        else:
            whole, plan = False, None
        items.append(item)
        plans.append(plan)
    return items, (key if whole else None, plans)


def _remember(path: _Path, element: Any, plan: _Plan) -> None:
    """Keep the validated instances of what ``_reuse`` rebuilt, under the content keys of the raw JSON."""
    if plan is None or element is None:
        return
    key, below = plan
    if isinstance(below, list):
        if isinstance(element, list) and len(element) == len(below):
            if key is not None and all(isinstance(item, BaseModel) for item in element):
                path.known[key] = element
            item_path = path.items()
            for item, item_plan in zip(element, below, strict=True):
                _remember(item_path, item, item_plan)
        return
    if key is not None and isinstance(element, BaseModel):
        path.known[key] = element
        path.model = type(element)
        for name, child_plan in below.items():  # only the children that were not reused
            _remember(path.below(name), getattr(element, name, None), child_plan)


# How a raw element was rebuilt, to remember it once valid: None (reused, or nothing to remember), or
# (content key, plans of the children not reused) for an object, (content key or None, one plan per item)
# for an array.
_Plan = tuple[bytes, dict[str, "_Plan"]] | tuple[bytes | None, list["_Plan"]] | None


def _errors(exc: ValidationError) -> list[ErrorDetails]:
    return exc.errors(include_input=False, include_url=False)


def _skipped(resource: Mapping[str, Any], error: Exception) -> SkippedResource:
    rtype, rid = str(resource.get("resourceType")), resource_id(resource)
    if isinstance(error, ValidationError):
        return SkippedResource(rtype, rid, _describe(error))
    return SkippedResource(rtype, rid, f"not valid FHIR ({type(error).__name__})")


def _describe(exc: ValidationError) -> str:
    errors = _errors(exc)
    if not errors:
        return "not valid FHIR"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(resource)"
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ").rstrip(".")
    text = f"{where}: {msg}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text[:_MAX_PROBLEM]
