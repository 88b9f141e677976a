"""The decide stage: what was gathered, judged by the service's rule set. Pure: no I/O, no clock, no state.

For each thing the service evaluates, its subject is read (a draft order into a ``MedicationOrder``, or the
patient), the rule set evaluates it on the record, and its findings become typed cards (``cards.model.Card``).
Nothing here writes anywhere: the cards go to the caller, which returns them, and to the observer it chose.
``phases`` only times the two steps (``rules``, ``render``) for the request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from cds_service.cards.model import Card
from cds_service.cards.render import build_cards
from cds_service.fhir.prefetch import UNOBSERVED, ResolutionObserver
from cds_service.hooks.catalog import ServiceDefinition
from cds_service.hooks.gather import Gathered
from cds_service.hooks.subjects import Subject
from cds_service.knowledge.model import Knowledge
from cds_service.rules.engine import Evaluation

S = TypeVar("S")


@dataclass(frozen=True)
class Verdict(Generic[S]):
    """One subject, its evaluation and the cards made from it (summary first)."""

    subject: Subject[S]
    evaluation: Evaluation
    cards: tuple[Card, ...]


@dataclass(frozen=True)
class Decision:
    """The verdicts of one call, in the order the subjects were found."""

    verdicts: tuple[Verdict[Any], ...] = ()

    @property
    def cards(self) -> tuple[Card, ...]:
        return tuple(card for verdict in self.verdicts for card in verdict.cards)

    def response(self) -> dict[str, Any]:
        """The CDS Hooks response body ``{"cards": [...]}``."""
        return {"cards": [card.to_json() for card in self.cards]}


def decide(
    service: ServiceDefinition[Any],
    gathered: Gathered,
    *,
    kb: Knowledge,
    now: datetime,
    base_url: str,
    phases: ResolutionObserver = UNOBSERVED,
) -> Decision:
    """Every subject of ``gathered`` through ``service.rules``; ``base_url``: the public base the cards link to."""
    return Decision(tuple(_verdicts(service, gathered, kb=kb, now=now, base_url=base_url, phases=phases)))


def _verdicts(
    service: ServiceDefinition[S],
    gathered: Gathered,
    *,
    kb: Knowledge,
    now: datetime,
    base_url: str,
    phases: ResolutionObserver,
) -> Iterator[Verdict[S]]:
    record = gathered.record
    if record is None:
        return
    for found in gathered.found:
        with phases.phase("rules"):
            subject = service.subjects.read(found, gathered.context, kb)
            if subject is None:
                continue
            evaluation = service.rules.evaluate(record, subject.what, kb, now)
        with phases.phase("render"):
            cards = build_cards(
                evaluation,
                subject.order,
                subject.order_reference,
                kb,
                base_url=base_url,
                patient_id=gathered.patient_id,
            )
        yield Verdict(subject, evaluation, tuple(cards))
