"""What a service evaluates: every ketamine draft order, the selected ones, or the patient.

Each kind is data on a service's descriptor (``ServiceDefinition.subjects``) and answers three questions:
what the hook context must hold beyond its schema (``context_issues``), what there is to evaluate, found
cheaply before any prefetch is read (``find``: none means the answer is ``{"cards": []}`` at once), and the
typed subject the rules judge (``read``: a ``MedicationOrder`` read from the draft order, or the patient).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from cds_service.hooks.errors import Issue
from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder, OrderStage
from cds_service.order.parser import NotAKetamineOrder, parse_order
from cds_service.order.recognition import find_ketamine_requests
from cds_service.rules.findings import Patient

log = logging.getLogger(__name__)

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Subject(Generic[S_co]):
    """One thing a service evaluates, as its rules see it (``what``), and the draft order the cards'
    suggestions act on (``order``, ``order_reference``: None when the subject is the patient)."""

    what: S_co
    order: Mapping[str, Any] | None = None
    order_reference: str | None = None


class Subjects(Protocol[S_co]):
    """What a service evaluates, found in the hook context."""

    @property
    def nothing(self) -> str:
        """The audit note of a call with nothing to evaluate ("no ketamine order")."""
        ...

    def context_issues(self, context: Mapping[str, Any]) -> list[Issue]:
        """What the (schema-valid) context must hold beyond its schema; empty when it is fine."""
        ...

    def find(self, context: Mapping[str, Any], kb: Knowledge) -> tuple[object, ...]:
        """What there is to evaluate, cheaply, before any prefetch is read."""
        ...

    def read(self, found: object, context: Mapping[str, Any], kb: Knowledge) -> Subject[S_co] | None:
        """The subject of one thing ``find`` found; None when it turns out to be nothing to judge."""
        ...


@dataclass(frozen=True)
class DraftOrders:
    """The ketamine and esketamine MedicationRequests of ``context.draftOrders``: all of them (order-sign), or
    only those ``context.selections`` names (``selected_only``: order-select), read at ``stage``."""

    stage: OrderStage
    selected_only: bool = False
    nothing: str = "no ketamine order"

    def context_issues(self, context: Mapping[str, Any]) -> list[Issue]:
        """Every entry of ``selections`` names an entry of ``draftOrders`` (``Type/id``)."""
        if not self.selected_only:
            return []
        present = draft_order_references(context.get("draftOrders"))
        return [
            Issue(
                f"selection {selection!r} does not reference an entry of context.draftOrders",
                code="value",
                expression=f"context.selections[{i}]",
            )
            for i, selection in enumerate(context.get("selections") or ())
            if selection not in present
        ]

    def draft_context(self, draft_orders: Mapping[str, Any], orders: Sequence[str]) -> dict[str, Any]:
        """The part of a hook context that carries ``draft_orders`` (a Bundle) with ``orders``
        (``MedicationRequest/<id>``) as the ones to evaluate: for a request built for this service."""
        context: dict[str, Any] = {"draftOrders": draft_orders}
        if self.selected_only:
            context["selections"] = list(orders)
        return context

    def find(self, context: Mapping[str, Any], kb: Knowledge) -> tuple[object, ...]:
        selections = context.get("selections") if self.selected_only else None
        return tuple(find_ketamine_requests(context["draftOrders"], selections, kb))

    def read(self, found: object, context: Mapping[str, Any], kb: Knowledge) -> Subject[MedicationOrder] | None:
        if not isinstance(found, Mapping):
            return None
        try:
            order = parse_order(found, context["draftOrders"], kb, self.stage)
        except NotAKetamineOrder:  # the scan and the parser disagree: nothing to judge
            log.error("order scan and parser disagree on a draft order")
            return None
        return Subject(order, found, order.reference)


@dataclass(frozen=True)
class ThePatient:
    """The patient of the hook call (``context.patientId``): a service with no draft order (patient-view)."""

    nothing: str = "no patient"

    def context_issues(self, context: Mapping[str, Any]) -> list[Issue]:
        return []

    def find(self, context: Mapping[str, Any], kb: Knowledge) -> tuple[object, ...]:
        patient_id = context.get("patientId")
        return (patient_id,) if isinstance(patient_id, str) and patient_id else ()

    def read(self, found: object, context: Mapping[str, Any], kb: Knowledge) -> Subject[Patient] | None:
        return Subject(Patient(f"Patient/{found}")) if isinstance(found, str) else None


def draft_context(
    subjects: Subjects[Any], draft_orders: Mapping[str, Any], orders: Sequence[str]
) -> dict[str, Any]:
    """``DraftOrders.draft_context`` of a service that evaluates draft orders (``ValueError`` otherwise)."""
    if not isinstance(subjects, DraftOrders):
        raise ValueError("the service evaluates no draft orders")
    return subjects.draft_context(draft_orders, orders)


def draft_order_references(draft_orders: Any) -> set[str]:
    """``Type/id`` of every entry resource of the draftOrders Bundle that has an id."""
    refs: set[str] = set()
    entries = draft_orders.get("entry") if isinstance(draft_orders, Mapping) else None
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping):
            rtype, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(rtype, str) and isinstance(rid, str):
                refs.add(f"{rtype}/{rid}")
    return refs
