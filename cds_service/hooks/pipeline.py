"""One hook call, from a parsed request body to the response body. Usable without Flask.

Order matters for speed: the cheap ketamine scan runs before anything touches the prefetch, so the
common case (an order for another drug) costs a schema check of the envelope and a code-set scan.
"""

from __future__ import annotations

import json
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
from cds_service.hooks.catalog import SERVICES, ServiceDefinition
from cds_service.hooks.context import validate_request
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.limits import raw_nesting_exceeds, too_deep
from cds_service.knowledge.model import Knowledge
from cds_service.observability import metrics
from cds_service.observability.audit import current_audit
from cds_service.order.model import OrderStage
from cds_service.order.parser import NotAKetamineOrder, find_ketamine_requests, parse_order
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
    body: Mapping[str, Any],
    *,
    kb: Knowledge,
    settings: Settings,
    now: datetime,
    fhir_session: requests.Session | None = None,
    base_url: str,
    allowlist: ServerAllowlist | None = None,
    raw_body: bytes | None = None,
) -> dict[str, Any]:
    """The response body ``{"cards": [...]}``; ``HookError`` for 400/404/412.

    ``raw_body``: the request bytes ``body`` was parsed from by ``json.loads``, whose envelope (everything but
    the prefetch) has been checked for nesting depth (``web.body.read_json_request``); the prefetch's depth
    is then checked on these bytes, and the envelope's schema check may take its compiled fast path. Without
    them (e.g. the sandbox) the prefetch is serialised for the depth check.
    """
    service = find_service(service_id)
    validate_request(service, body, parsed_json=raw_body is not None)
    audit = current_audit()
    audit.service_id, audit.hook, audit.hook_instance = service.id, service.hook, body["hookInstance"]
    context: Mapping[str, Any] = body["context"]
    draft_orders: Mapping[str, Any] = context["draftOrders"]
    selections = context.get("selections") if service.hook == "order-select" else None

    orders = find_ketamine_requests(draft_orders, selections, kb)
    if not orders:
        audit.note = "no ketamine order"
        return {"cards": []}

    if _prefetch_too_deep(body, raw_body, settings.max_json_depth):
        raise HookError(400, too_deep(settings.max_json_depth, "prefetch"))
    resolution = resolve_prefetch(
        service.prefetch,
        body,
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
    _account(service, body, cards)
    return {"cards": cards}


def _prefetch_too_deep(body: Mapping[str, Any], raw_body: bytes | None, max_depth: int) -> bool:
    """The prefetch nests deeper than ``max_depth`` (the body is level 1, the prefetch object level 2)."""
    # json.loads also accepts UTF-16/32 bytes (a NUL among the first four): check a UTF-8 copy instead
    if raw_body is None or b"\x00" in raw_body[:4]:
        raw_body = json.dumps({"prefetch": body.get("prefetch")}, default=str).encode()
    return raw_nesting_exceeds(raw_body, max_depth)


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
