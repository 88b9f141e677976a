"""One hook call, from a request body to the response body. Usable without Flask.

Order matters for speed: the cheap ketamine scan runs before anything touches the prefetch, so the
common case (an order for another drug) costs a schema check of the envelope and a code-set scan; the
prefetch is decoded only on the ketamine path, and only the members the service's templates name
(``hooks.body``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from cds_service.cards.render import render_cards
from cds_service.config import Settings
from cds_service.feedback import blueprint as feedback
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.prefetch import PrefetchResolution, resolve_prefetch
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import SERVICES, ServiceDefinition
from cds_service.hooks.context import validate_request
from cds_service.hooks.errors import HookError, Issue
from cds_service.knowledge.model import Knowledge
from cds_service.observability import metrics
from cds_service.observability.audit import current_audit
from cds_service.order.model import OrderStage
from cds_service.order.parser import NotAKetamineOrder, find_ketamine_requests, parse_order
from cds_service.record import kinds
from cds_service.record.builder import build_record as _build_record
from cds_service.rules import engine

log = logging.getLogger(__name__)


def find_service(service_id: str) -> ServiceDefinition:
    service = SERVICES.get(service_id)
    if service is None:
        raise HookError(404, Issue(f"No CDS service {service_id!r}; see GET /cds-services", code="not-found"))
    return service


def handle_hook_call(
    service_id: str,
    body: Mapping[str, Any] | HookBody,
    *,
    kb: Knowledge,
    settings: Settings,
    now: datetime,
    fhir_session: requests.Session | None = None,
    base_url: str,
    allowlist: ServerAllowlist | None = None,
) -> dict[str, Any]:
    """The response body ``{"cards": [...]}``; ``HookError`` for 400/404/412.

    ``body``: what the HTTP edge read (``hooks.body.decode_hook_body``: the prefetch still raw), or a parsed
    body (the sandbox, tests).
    """
    service = find_service(service_id)
    request = body if isinstance(body, HookBody) else HookBody.parsed(body)
    envelope = checked_envelope(service, request)
    audit = current_audit()
    audit.service_id, audit.hook, audit.hook_instance = service.id, service.hook, envelope["hookInstance"]
    context: Mapping[str, Any] = envelope["context"]
    draft_orders: Mapping[str, Any] = context["draftOrders"]
    selections = context.get("selections") if service.hook == "order-select" else None

    orders = find_ketamine_requests(draft_orders, selections, kb)
    if not orders:
        audit.note = "no ketamine order"
        return {"cards": []}

    resolution = resolve_prefetch(
        service.prefetch,
        with_prefetch(service, request, settings.max_json_depth),
        settings=settings,
        allowlist=allowlist if allowlist is not None else ServerAllowlist(settings.fhir_server_allowlist),
        session=fhir_session,
        audit=audit,
        now=now,
    )
    _require(resolution)
    patient_id: str = context["patientId"]
    with audit.phase("record"):
        record = _build_record(
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
    for resource in orders:
        with audit.phase("rules"):
            try:
                order = parse_order(resource, draft_orders, kb, stage)
            except NotAKetamineOrder:  # the scan and the parser disagree: nothing to judge
                log.error("order scan and parser disagree on a draft order")
                continue
            evaluation = engine.evaluate(record, order, kb, now)
        with audit.phase("render"):
            cards.extend(
                render_cards(evaluation, resource, order.reference, kb, base_url=base_url, patient_id=patient_id)
            )
    _account(service, envelope, cards)
    return {"cards": cards}


def checked_envelope(service: ServiceDefinition, request: HookBody) -> Mapping[str, Any]:
    """The request's envelope (every member but the prefetch) once the request is valid for ``service``
    (``HookError`` 400 otherwise); no prefetch member is decoded for the check."""
    validate_request(service, request.schema_view(), parsed_json=request.from_json)
    envelope: Mapping[str, Any] = request.envelope
    return envelope


def with_prefetch(service: ServiceDefinition, request: HookBody, max_depth: int) -> Mapping[str, Any]:
    """The request with the prefetch members the service's templates name, decoded; ``HookError`` 400
    when the prefetch nests deeper than ``max_depth``."""
    capped = {key.key for key in service.prefetch if key.kind in kinds.CAPPED}
    return request.with_prefetch({key.key for key in service.prefetch}, max_depth, capped)


def _require(resolution: PrefetchResolution) -> None:
    if resolution.unobtainable_required:
        current_audit().note = "412: " + ", ".join(g.key for g in resolution.unobtainable_required) + " unobtainable"
        raise HookError(
            412,
            [
                Issue(
                    f"Required data {gap.key!r} could not be obtained: {gap.reason}",
                    code="incomplete",
                    expression=f"prefetch.{gap.key}",
                )
                for gap in resolution.unobtainable_required
            ],
        )


def _topic(card: Mapping[str, Any]) -> str:
    topic = card.get("source", {}).get("topic", {})
    code: str = topic.get("code", "") if isinstance(topic, Mapping) else ""
    return code


def _account(service: ServiceDefinition, body: Mapping[str, Any], cards: list[dict[str, Any]]) -> None:
    """Audit, metrics and the feedback store's card record: no patient data, and never fatal."""
    audit = current_audit()
    triples = [(c["uuid"], _topic(c), c["indicator"]) for c in cards]
    for uuid, topic, indicator in triples:
        audit.card_uuids.append(uuid)
        audit.topics.append(topic)
        audit.indicators.append(indicator)
    try:
        metrics.observe_cards(service.id, [(t, i) for _, t, i in triples])
    except Exception as exc:
        log.error("metrics.observe_cards failed: %s", type(exc).__name__)
    try:
        feedback.record_cards(service.id, service.hook, str(body["hookInstance"]), triples)
    except Exception as exc:
        log.error("feedback.record_cards failed: %s", type(exc).__name__)
