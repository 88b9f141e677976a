"""The seam: every call from replay into the service's pipeline goes through this module, and only this one.

Replay gives the service exactly what an EHR would: a CDS Hooks request for the service of ``--hook``, its
draft order in ``context.draftOrders`` and every prefetch key filled the way the service's own templates
(``hooks.catalog``) ask, answered from the patient's resources by the sandbox's in-memory FHIR search
(``fhir.memory.MemoryServer``: codes, categories, ``_sort``, ``_count``, ``_include``). It then runs
the service's own steps, in the order of ``hooks.pipeline.handle_hook_call`` (and with its helpers): request
validation, the ketamine scan, the prefetch (depth check, resolution), the record builder, the rules engine and
the card renderer. There is no second copy of any rule, and no HTTP, authentication or FHIR fallback (the
prefetch is always complete). The settings that change an answer are the service's own: the environment's
``KETAMINE_CDS_LOCAL_TIMEZONE`` (dates without an offset) and ``KETAMINE_CDS_MAX_JSON_DEPTH``.

What the web app does besides is left out on purpose: ``handle_hook_call`` ends with ``_account``, which
writes card metrics and feedback-store records. A replay must leave no trace in either (a card nobody was
shown must never reach ``/metrics`` or the override report), so this module calls the steps, not
``handle_hook_call``, and passes a throwaway audit. When the pipeline is split into gather / decide / an
injected observer with a silent default (issue 16), ``_answer`` becomes ``gather`` + ``decide`` with the
silent observer, and the rest of replay does not change.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from cds_service.cards.render import render_cards
from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.memory import MemoryServer
from cds_service.fhir.prefetch import resolve_prefetch
from cds_service.fhir.templates import fill
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import SERVICES, ServiceDefinition
from cds_service.hooks.errors import HookError
from cds_service.hooks.pipeline import checked_envelope, with_prefetch
from cds_service.knowledge.model import Knowledge
from cds_service.observability.audit import RequestAudit
from cds_service.order.model import OrderStage
from cds_service.order.parser import NotAKetamineOrder, find_ketamine_requests, parse_order
from cds_service.record.builder import build_record
from cds_service.rules import engine
from cds_service.rules.findings import CheckStatus
from cds_service.sandbox.requests import latest_weight_kg, materialize_order

log = logging.getLogger(__name__)

REPLAY_USER: Final = "Practitioner/ketamine-cds-replay"
# Card links are made from this base; it is never fetched and never leaves the replay.
CARD_BASE_URL: Final = "https://ketamine-cds.replay.invalid"
_FHIR_BASE: Final = "https://fhir.replay.invalid/r4"
_NS: Final = uuid.UUID("0d5e3f62-6f0c-4c55-9d1e-5b2a7f3c9e41")
# Value sets whose active conditions make "an active depressive disorder" (--cohort depression)
DEPRESSION_VALUESETS: Final = ("depression", "bipolar-depression")
_NO_SERVERS: Final = ServerAllowlist(())


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What the service said about one order, reduced to what replay counts (no card text, no patient data)."""

    status: int  # 200, or the HTTP status the service would have answered instead of cards
    cards: tuple[tuple[str, str], ...] = ()  # (topic code, indicator) of every card, in the service's order
    not_documented: tuple[str, ...] = ()  # checklist criteria with status "not documented"
    not_obtained: tuple[str, ...] = ()  # data-gap keys: data the service asked for and could not use
    skipped: tuple[str, ...] = ()  # resource types set aside as invalid by the record builder


def service_for(hook: str) -> ServiceDefinition:
    for service in SERVICES.values():
        if service.hook == hook:
            return service
    raise ValueError(f"no service answers hook {hook!r}")


def read_types(hook: str) -> frozenset[str]:
    """The resource types the service's prefetch asks for (and Medication, which they ``_include``)."""
    types = {key.template.split("?")[0].split("/")[0] for key in service_for(hook).prefetch}
    return frozenset(types | {"Medication"})


class ReplayService:
    """The service of one hook with one knowledge base, called in-process and silently.

    ``settings``: the service's (default ``Settings.from_env()``: ``ConfigError`` names a malformed variable),
    with authentication and the FHIR fallback off.
    """

    def __init__(self, kb: Knowledge, hook: str, settings: Settings | None = None) -> None:
        self.kb = kb
        self.service = service_for(hook)
        self.settings = dataclasses.replace(
            settings or Settings.from_env(), auth_enabled=False, fhir_server_allowlist=()
        )
        missing = [key for key in DEPRESSION_VALUESETS if key not in kb.valuesets]
        if missing:
            raise ValueError(f"the knowledge base has no value set {', '.join(missing)} for --cohort depression")

    @property
    def zone(self) -> tzinfo:
        """Where a dateTime without an offset is read (``KETAMINE_CDS_LOCAL_TIMEZONE``)."""
        return self.settings.local_zone

    # ------------------------------------------------------------------ what to replay

    def ketamine_orders(
        self, requests: Sequence[Mapping[str, Any]], medications: Iterable[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """The ketamine and esketamine MedicationRequests among ``requests``: the service's own order scan
        (``medicationReference`` resolved against ``medications``)."""
        entries = [{"resource": r} for r in (*requests, *medications)]
        return find_ketamine_requests({"resourceType": "Bundle", "type": "collection", "entry": entries}, None, self.kb)

    def in_depression_cohort(self, resources: Iterable[Mapping[str, Any]]) -> bool:
        """An active depressive disorder, recognised by the service's record builder (codes, names, status)."""
        conditions = [r for r in resources if r.get("resourceType") == "Condition"]
        record = build_record(conditions, self.kb, available=frozenset(), zone=self.zone)
        return any(record.conditions_in(key) for key in DEPRESSION_VALUESETS)

    def template_order(
        self,
        template: Mapping[str, Any],
        *,
        patient_id: str,
        now: datetime,
        resources: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The draft order of ``template`` for this patient (the sandbox's generator) and notes on how it was made.

        A template that sizes the dose by weight (``mg_per_kg``) is written in mg/kg, as prescribed, for a
        patient with no weight on record (note ``dose-per-kg-no-weight``): no weight is invented.
        """
        weight = latest_weight_kg([dict(r) for r in resources])
        parameters = template.get("parameters") or {}
        params: dict[str, Any] = {}
        notes: tuple[str, ...] = ()
        if weight is None and "mg_per_kg" in parameters and not {"dose_mg", "dose_mg_per_kg"} & set(parameters):
            params, notes = {"dose_mg_per_kg": parameters["mg_per_kg"]}, ("dose-per-kg-no-weight",)
        order = materialize_order(
            template,
            patient_ref=f"Patient/{patient_id}",
            order_id=str(uuid.uuid5(_NS, f"{patient_id}/order")),
            authored_on=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            params=params,
            weight_kg=weight,
        )
        return order, notes

    # ------------------------------------------------------------------ the service's answer

    def request(
        self,
        resources: Sequence[Mapping[str, Any]],
        order: Mapping[str, Any],
        *,
        patient_id: str,
        medications: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The CDS Hooks request an EHR would send: ``order`` as the draft, every prefetch key answered from
        ``resources`` by the service's own templates. ``medications`` go with the draft order (for a
        ``medicationReference``)."""
        entries = [{"resource": order}, *({"resource": m} for m in medications)]
        draft = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        context: dict[str, Any] = {"userId": REPLAY_USER, "patientId": patient_id, "draftOrders": draft}
        if self.service.hook == "order-select":
            context["selections"] = [f"MedicationRequest/{order.get('id')}"]
        server = MemoryServer(resources, _FHIR_BASE, copies=False)  # the pipeline never changes its input
        prefetch = {key.key: server.query(fill(key.template, context)).body for key in self.service.prefetch}
        return {
            "hook": self.service.hook,
            "hookInstance": str(uuid.uuid5(_NS, f"{patient_id}/{order.get('id')}/{order.get('authoredOn')}")),
            "context": context,
            "prefetch": prefetch,
        }

    def evaluate(
        self,
        resources: Sequence[Mapping[str, Any]],
        order: Mapping[str, Any],
        *,
        patient_id: str,
        now: datetime,
        medications: Sequence[Mapping[str, Any]] = (),
    ) -> OrderOutcome:
        """What the service answers for ``order`` at ``now``, the record holding ``resources``."""
        try:
            body = self.request(resources, order, patient_id=patient_id, medications=medications)
            return self._answer(body, now)
        except HookError as exc:
            return OrderOutcome(exc.status)
        except Exception as exc:  # the web app's edge answers 500 here: count it, never stop the run
            log.error("replay: the service failed on an order: %s", type(exc).__name__)
            return OrderOutcome(500)

    def _answer(self, body: Mapping[str, Any], now: datetime) -> OrderOutcome:
        """``hooks.pipeline.handle_hook_call`` without its accounting (metrics, feedback store, audit)."""
        service, kb, settings = self.service, self.kb, self.settings
        # every value came from a JSON decoder or is JSON-typed: the schema check may take its fast path
        request = HookBody({k: v for k, v in body.items() if k != "prefetch"}, body["prefetch"], from_json=True)
        envelope = checked_envelope(service, request)
        context: Mapping[str, Any] = envelope["context"]
        draft_orders: Mapping[str, Any] = context["draftOrders"]
        selections = context.get("selections") if service.hook == "order-select" else None
        orders = find_ketamine_requests(draft_orders, selections, kb)
        if not orders:
            return OrderOutcome(200)
        resolution = resolve_prefetch(
            service.prefetch,
            with_prefetch(service, request, settings.max_json_depth),
            settings=settings,
            allowlist=_NO_SERVERS,
            audit=RequestAudit(),
        )
        if resolution.unobtainable_required:
            return OrderOutcome(412)
        patient_id: str = context["patientId"]
        record = build_record(
            resolution.resources,
            kb,
            available=resolution.available,
            gaps=resolution.gaps,
            patient_id=patient_id,
            now=now,
            zone=settings.local_zone,
        )
        stage = OrderStage.SELECT if service.hook == "order-select" else OrderStage.SIGN
        cards: list[dict[str, Any]] = []
        not_documented: list[str] = []
        for resource in orders:
            try:
                parsed = parse_order(resource, draft_orders, kb, stage)
            except NotAKetamineOrder:
                continue
            evaluation = engine.evaluate(record, parsed, kb, now)
            not_documented.extend(c.criterion for c in evaluation.checks if c.status is CheckStatus.UNDOCUMENTED)
            cards.extend(
                render_cards(evaluation, resource, parsed.reference, kb, base_url=CARD_BASE_URL, patient_id=patient_id)
            )
        return OrderOutcome(
            status=200,
            cards=tuple((_topic(card), str(card.get("indicator"))) for card in cards),
            not_documented=tuple(dict.fromkeys(not_documented)),
            not_obtained=tuple(dict.fromkeys(gap.key for gap in record.data_gaps)),
            skipped=tuple(dict.fromkeys(s.resource_type for s in record.skipped)),
        )


def _topic(card: Mapping[str, Any]) -> str:
    topic = (card.get("source") or {}).get("topic") or {}
    return str(topic.get("code") or "") if isinstance(topic, Mapping) else ""
