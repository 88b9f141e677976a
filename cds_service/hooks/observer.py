"""What the pipeline tells whoever watches it: the call, phase timings, FHIR fallback fetches, notes, cards.

The pipeline writes no side effect of its own. An observer is injected; the default, ``SILENT``, records
nothing, so ``ketamine-cds evaluate``, replay and tests leave no trace anywhere. Only the web app passes the
recording observer (``web/observer.py``: the request's audit line, the Prometheus metrics, the feedback store's
card records). What an observer is given never holds patient data: ids of the call and of the cards, topic
codes, indicators, timings, the knowledge-base version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from cds_service.cards.model import Card
from cds_service.fhir.prefetch import ResolutionObserver, Unobserved


class Observer(ResolutionObserver, Protocol):
    """Everything the pipeline reports (``phase`` and ``fetched`` come from ``ResolutionObserver``)."""

    def call(self, service_id: str, hook: str, hook_instance: str) -> None:
        """The call is valid for the service: from here on, everything concerns this hook instance."""
        ...

    def note(self, text: str) -> None:
        """Why the call ended without rules ("no ketamine order", "412: conditions unobtainable")."""
        ...

    def cards(self, service_id: str, hook: str, hook_instance: str, cards: Sequence[Card], kb_version: str) -> None:
        """The cards returned (possibly none), made with the knowledge base of version ``kb_version``."""
        ...


class Silent(Unobserved):
    """The default observer: it records nothing."""

    def call(self, service_id: str, hook: str, hook_instance: str) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    def cards(self, service_id: str, hook: str, hook_instance: str, cards: Sequence[Card], kb_version: str) -> None:
        return None


SILENT: Final = Silent()
