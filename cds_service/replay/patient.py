"""One patient's replay: which orders to replay, at which instant, on which part of the record.

``--actual-orders``: every ketamine or esketamine MedicationRequest of the patient (the service's own order
scan; ``entered-in-error`` ones are not orders) is replayed at its ``authoredOn``, on the record as it stood
then (the pipeline's gather stage as of that instant: ``fhir.asof``), with itself as the draft order
(``status`` set to ``draft``, as at signing) and without itself in the record. Earlier orders stay in the
record as history; later ones are left out.

``--order TEMPLATE``: one hypothetical order at ``--now`` for each patient of the cohort (``all``, or an
active depressive disorder as the service's record builder recognises it), on the record as of ``--now``.
A patient recorded as deceased by then is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Literal

from cds_service.fhir.asof import as_of, known_from, read_instant
from cds_service.replay.evaluate import OrderOutcome, ReplayService
from cds_service.replay.index import StoredResource
from cds_service.replay.tally import OrderResult, PatientResult, Place

ACTUAL_ORDERS: Final = "actual-orders"
TEMPLATE_ORDER: Final = "order"
_MEDICATION_USERS: Final = frozenset({"MedicationRequest", "MedicationStatement", "MedicationAdministration"})

# Why a patient was not evaluated (the report's patients_left_out)
NO_PATIENT_RESOURCE: Final = "no-patient-resource"
NOT_IN_COHORT: Final = "not-in-cohort"
DECEASED: Final = "deceased"
NO_KETAMINE_ORDER: Final = "no-ketamine-order"
NO_DATED_ORDER: Final = "no-dated-ketamine-order"
FAILED: Final = 500  # the status of an order the service failed on
EVALUATION_ERROR: Final = "evaluation-error"


@dataclass(frozen=True)
class Plan:
    """What to replay; the same for every patient of a run."""

    mode: Literal["actual-orders", "order"]
    hook: str
    cohort: Literal["depression", "all"] = "all"
    template: Mapping[str, Any] | None = None  # --order: the template document
    now: datetime | None = None  # --order: the instant of the hypothetical order


def replay_patient(
    key: str,
    stored: Sequence[StoredResource],
    medications: Mapping[str, Mapping[str, Any]],
    service: ReplayService,
    plan: Plan,
    places: Mapping[int, tuple[str, str]],
) -> PatientResult:
    """Replay one patient. ``medications``: the Medication resources of the export by id (those the
    patient's resources refer to at least); ``places``: file number -> (label, unit), for problems."""

    def place(item: StoredResource) -> Place:  # where a problem is, for the report
        label, unit = places.get(item.file, (f"file {item.file}", "line"))
        return label, unit, item.position

    resources: list[Mapping[str, Any]] = [item.resource for item in stored]
    problems: list[tuple[str, Place]] = []
    referenced: dict[str, Mapping[str, Any]] = {}
    for item in stored:
        med_id = _medication_id(item.resource)
        if med_id is None:
            continue
        if med_id in medications:
            referenced[med_id] = medications[med_id]
        else:
            problems.append(("medication-not-in-export", place(item)))
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None:
        first = min(stored, key=lambda s: (s.file, s.position))
        return PatientResult(False, NO_PATIENT_RESOURCE, problems=(*problems, ("patient-not-in-export", place(first))))
    meds = list(referenced.values())
    if plan.mode == TEMPLATE_ORDER:
        at = next(place(item) for item in stored if item.resource is patient)
        return _template(key, patient, resources, meds, service, plan, tuple(problems), at)
    return _actual(key, stored, resources, meds, service, tuple(problems), place)


def _template(
    key: str,
    patient: Mapping[str, Any],
    resources: list[Mapping[str, Any]],
    medications: list[Mapping[str, Any]],
    service: ReplayService,
    plan: Plan,
    problems: tuple[tuple[str, Place], ...],
    at: Place,
) -> PatientResult:
    if plan.now is None or plan.template is None:
        raise ValueError("a template replay needs a template and an instant")
    now = plan.now
    if _deceased(patient, now, service.zone):
        return PatientResult(True, DECEASED, problems=problems)
    known = as_of(resources, now, service.zone)
    if plan.cohort == "depression" and not service.in_depression_cohort(known):
        return PatientResult(True, NOT_IN_COHORT, problems=problems)
    order, notes = service.template_order(plan.template, patient_id=key, now=now, resources=known)
    outcome = service.evaluate([*resources, *medications], order, patient_id=key, now=now, known_at=now)
    result = _order_result(outcome, now, None, notes=notes)
    failed = ((EVALUATION_ERROR, at),) if outcome.status == FAILED else ()
    return PatientResult(True, orders=(result,), problems=(*problems, *failed))


def _actual(
    key: str,
    stored: Sequence[StoredResource],
    resources: list[Mapping[str, Any]],
    medications: list[Mapping[str, Any]],
    service: ReplayService,
    problems: tuple[tuple[str, Place], ...],
    place: Callable[[StoredResource], Place],
) -> PatientResult:
    requests = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
    found = service.ketamine_orders(requests, medications)
    orders = [o for o in found if o.get("status") != "entered-in-error"]
    if not orders:
        return PatientResult(True, NO_KETAMINE_ORDER, problems=problems)
    position = {id(item.resource): item for item in stored}
    more_problems = list(problems)
    results: list[OrderResult] = []
    for order in orders:
        instant = known_from(order, service.zone)  # its authoredOn
        if instant is None:
            more_problems.append(("order-without-date", place(position[id(order)])))
            continue
        others = [r for r in resources if r is not order]
        draft = {**order, "status": "draft"}
        own = [m for m in medications if _medication_id(order) == m.get("id")]
        outcome = service.evaluate(
            [*others, *medications], draft, patient_id=key, now=instant, medications=own, known_at=instant
        )
        if outcome.status == FAILED:
            more_problems.append((EVALUATION_ERROR, place(position[id(order)])))
        order_id = order.get("id")
        results.append(_order_result(outcome, instant, order_id if isinstance(order_id, str) else None))
    if not results:
        return PatientResult(True, NO_DATED_ORDER, problems=tuple(more_problems))
    return PatientResult(True, orders=tuple(results), problems=tuple(more_problems))


def _order_result(
    outcome: OrderOutcome, instant: datetime, order_id: str | None, *, notes: tuple[str, ...] = ()
) -> OrderResult:
    return OrderResult(
        instant=instant.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        order_id=order_id,
        status=outcome.status,
        cards=outcome.cards,
        not_documented=outcome.not_documented,
        not_obtained=outcome.not_obtained,
        skipped=outcome.skipped,
        left_out=outcome.left_out,
        notes=notes,
    )


def _deceased(patient: Mapping[str, Any], now: datetime, zone: tzinfo) -> bool:
    if patient.get("deceasedBoolean") is True:
        return True
    died = read_instant(patient.get("deceasedDateTime"), zone)
    return died is not None and died <= now


def _medication_id(resource: Mapping[str, Any]) -> str | None:
    """The id of the Medication a medication resource refers to (not a contained one); None otherwise."""
    if resource.get("resourceType") not in _MEDICATION_USERS:
        return None
    holder = resource.get("medicationReference")
    reference = holder.get("reference") if isinstance(holder, Mapping) else None
    if not isinstance(reference, str) or "Medication/" not in reference:
        return None
    med_id = reference.split("/_history/", 1)[0].rstrip("/").rsplit("Medication/", 1)[1]
    return med_id if med_id and "/" not in med_id else None


def referenced_medications(stored: Sequence[StoredResource]) -> set[str]:
    """Ids of the Medications the resources refer to (to fetch them from the index)."""
    ids = {_medication_id(item.resource) for item in stored}
    ids.discard(None)
    return {i for i in ids if i is not None}
