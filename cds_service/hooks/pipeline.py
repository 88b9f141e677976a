"""One hook call, from a request body to the response body: the one pipeline every service runs.

Three stages: ``gather`` (validate, find what the service evaluates, prefetch or its FHIR fallback, 412, the
record as of an instant: ``hooks.gather``), ``decide`` (pure: record and subjects through the service's rule
set into typed cards: ``hooks.decide``), and an injected observer that is told what happened (audit, metrics,
feedback store), silent unless the caller passes one: only the web app does. Importing this module loads no
Flask, no SQLAlchemy and no Prometheus client.

Order matters for speed: the cheap scan of what the service evaluates runs before anything touches the
prefetch, so the common case (an order for another drug) costs a schema check of the envelope and a code-set
scan; the prefetch is decoded only when there is something to evaluate, and only the members the service's
templates name (``hooks.body``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import SERVICES, ServiceDefinition
from cds_service.hooks.decide import Decision, decide
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.gather import Gathered, PrefetchSource, RequestPrefetch, gather
from cds_service.hooks.observer import SILENT, Observer
from cds_service.knowledge.model import Knowledge


def find_service(service_id: str) -> ServiceDefinition[Any]:
    service = SERVICES.get(service_id)
    if service is None:
        raise HookError(404, Issue(f"No CDS service {service_id!r}; see GET /cds-services", code="not-found"))
    return service


@dataclass(frozen=True)
class Answer:
    """What one call gathered and what was decided from it."""

    gathered: Gathered
    decision: Decision


def run(
    service: ServiceDefinition[Any],
    request: HookBody,
    *,
    kb: Knowledge,
    settings: Settings,
    now: datetime,
    base_url: str,
    source: PrefetchSource | None = None,
    as_of: datetime | None = None,
    observer: Observer = SILENT,
) -> Answer:
    """Gather (from ``source``, default the request's prefetch with no FHIR server allowed; the record as of
    ``as_of``), decide, and tell ``observer`` the cards. ``HookError`` for 400/412."""
    gathered = gather(
        service, request, kb=kb, settings=settings, now=now, source=source, as_of=as_of, observer=observer
    )
    if gathered.record is None:
        return Answer(gathered, Decision())
    decision = decide(service, gathered, kb=kb, now=now, base_url=base_url, phases=observer)
    observer.cards(service.id, service.hook, gathered.hook_instance, decision.cards, kb.version)
    return Answer(gathered, decision)


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
    observer: Observer = SILENT,
) -> dict[str, Any]:
    """The response body ``{"cards": [...]}``; ``HookError`` for 400/404/412.

    ``body``: what the HTTP edge read (``hooks.body.decode_hook_body``: the prefetch still raw), or a parsed
    body (the sandbox, tests).
    """
    service = find_service(service_id)
    request = body if isinstance(body, HookBody) else HookBody.parsed(body)
    source = RequestPrefetch(
        request,
        allowlist if allowlist is not None else ServerAllowlist(settings.fhir_server_allowlist),
        fhir_session,
    )
    answer = run(service, request, kb=kb, settings=settings, now=now, base_url=base_url, source=source,
                 observer=observer)  # fmt: skip
    return answer.decision.response()
