"""The web app's observer of the pipeline: the only one that records anything.

What the pipeline reports goes to the request's audit (the request log line: service, hook instance, card
uuids, topics, indicators, phase timings, note), to the Prometheus metrics (cards returned, FHIR fallback
fetches) and to the feedback store (each card returned, with the knowledge-base version that made it, so
that feedback can be attributed). No patient data. A failure of the metrics or of the store is logged and
never reaches the response.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager

from cds_service.cards.model import Card
from cds_service.observability import metrics
from cds_service.observability.audit import current_audit
from cds_service.web import feedback

log = logging.getLogger(__name__)


class RecordingObserver:
    """Audit, metrics and the feedback store of the request being served (``hooks.observer.Observer``)."""

    def call(self, service_id: str, hook: str, hook_instance: str) -> None:
        audit = current_audit()
        audit.service_id, audit.hook, audit.hook_instance = service_id, hook, hook_instance

    def phase(self, name: str) -> AbstractContextManager[object]:
        return current_audit().phase(name)

    def fetched(self, outcome: str, seconds: float) -> None:
        """Called from the fetching threads: metrics only (the audit is the request thread's)."""
        metrics.observe_fhir_fetch(outcome, seconds)

    def note(self, text: str) -> None:
        current_audit().note = text

    def cards(self, service_id: str, hook: str, hook_instance: str, cards: Sequence[Card], kb_version: str) -> None:
        audit = current_audit()
        triples = [(card.uuid, card.topic or "", card.indicator) for card in cards]
        for uuid, topic, indicator in triples:
            audit.card_uuids.append(uuid)
            audit.topics.append(topic)
            audit.indicators.append(indicator)
        try:
            metrics.observe_cards(service_id, [(topic, indicator) for _, topic, indicator in triples])
        except Exception as exc:
            log.error("metrics.observe_cards failed: %s", type(exc).__name__)
        try:
            feedback.record_cards(service_id, hook, hook_instance, triples, kb_version=kb_version)
        except Exception as exc:
            log.error("feedback.record_cards failed: %s", type(exc).__name__)


RECORDING = RecordingObserver()
