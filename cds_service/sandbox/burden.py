"""Alert burden over the fixture library: how many cards of each indicator every topic fires.

``ketamine-cds fixtures burden`` runs every fixture's own order through the same in-process pipeline as
``evaluate`` (auth off, full prefetch, dates rolled to one fixed instant) and counts, per topic code, the cards
of each indicator, and the mean number of cards per ketamine order (an order the service recognises as
ketamine or esketamine, whether or not it answered cards). The figures before and after a change of the rules
are kept in ``docs/alert-burden.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from cds_service.knowledge.model import Indicator
from cds_service.sandbox.fixtures import Manifest

INDICATORS = tuple(i.value for i in Indicator.most_urgent_first())
SUMMARY_TOPIC = "eligibility-summary"


@dataclass(frozen=True)
class FixtureCards:
    """The cards one fixture's order got: (topic, indicator) in the order the service returned them."""

    name: str
    ketamine_order: bool
    cards: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Burden:
    hook: str
    evaluated_at: datetime
    fixtures: tuple[FixtureCards, ...]
    per_topic: Mapping[str, Counter[str]] = field(default_factory=dict)

    @property
    def ketamine_orders(self) -> tuple[FixtureCards, ...]:
        return tuple(f for f in self.fixtures if f.ketamine_order)

    @property
    def cards(self) -> int:
        return sum(len(f.cards) for f in self.ketamine_orders)

    def mean_cards(self) -> float:
        """Mean cards per ketamine order (summary included)."""
        orders = self.ketamine_orders
        return self.cards / len(orders) if orders else 0.0

    def mean_beyond_summary(self) -> float:
        """Mean cards per ketamine order besides the eligibility summary."""
        orders = self.ketamine_orders
        extra = sum(1 for f in orders for topic, _i in f.cards if topic != SUMMARY_TOPIC)
        return extra / len(orders) if orders else 0.0

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.per_topic.values():
            total.update(counts)
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "evaluatedAt": self.evaluated_at.isoformat(),
            "fixtures": len(self.fixtures),
            "ketamineOrders": len(self.ketamine_orders),
            "cards": self.cards,
            "meanCardsPerKetamineOrder": round(self.mean_cards(), 3),
            "meanCardsBesidesSummary": round(self.mean_beyond_summary(), 3),
            "perTopic": {t: {i: c[i] for i in INDICATORS if c[i]} for t, c in sorted(self.per_topic.items())},
            "perFixture": {f.name: [f"{t}:{i}" for t, i in f.cards] for f in self.fixtures},
        }


def default_instant(manifest: Manifest) -> datetime:
    """Noon UTC on the library's anchor date: a fixed clock, so two runs on the same rules give the same figures."""
    return datetime.combine(manifest.anchor, time(12, 0), tzinfo=UTC)


def measure(manifest: Manifest, *, hook: str = "order-sign", now: datetime | None = None) -> Burden:
    """Evaluate every fixture's own order (``hook``) at ``now`` and count the cards."""
    from cds_service.sandbox.evaluation import evaluate, request_for, sandbox_settings

    instant = now or default_instant(manifest)
    settings = sandbox_settings()
    per_topic: dict[str, Counter[str]] = {}
    results: list[FixtureCards] = []
    for entry in manifest.entries:
        _label, body, _own = request_for(entry.name, hook=hook, order=None, now=instant, root=str(manifest.root))
        answer = evaluate(body, instant, settings)
        cards = tuple((card.topic or "?", card.indicator) for card in answer.decision.cards)
        for topic, indicator in cards:
            per_topic.setdefault(topic, Counter())[indicator] += 1
        results.append(FixtureCards(entry.name, bool(answer.gathered.found), cards))
    return Burden(hook, instant, tuple(results), per_topic)


def render_text(burden: Burden) -> str:
    """A table a person reads in a terminal or pastes into ``docs/alert-burden.md`` (markdown)."""
    orders = burden.ketamine_orders
    lines = [
        f"Alert burden, {burden.hook}, fixture library evaluated at {burden.evaluated_at.isoformat()}",
        "",
        f"- fixtures: {len(burden.fixtures)}; ketamine or esketamine orders: {len(orders)}",
        f"- cards on ketamine orders: {burden.cards}",
        f"- mean cards per ketamine order: {burden.mean_cards():.2f} "
        f"({burden.mean_beyond_summary():.2f} besides the eligibility summary)",
        "",
        "| topic | critical | warning | info | total |",
        "|---|---:|---:|---:|---:|",
    ]
    ranked = sorted(burden.per_topic.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    for topic, counts in ranked:
        cells = " | ".join(str(counts[i]) for i in INDICATORS)
        lines.append(f"| `{topic}` | {cells} | {sum(counts.values())} |")
    total = burden.totals()
    lines.append(f"| **all** | {' | '.join(str(total[i]) for i in INDICATORS)} | {sum(total.values())} |")
    return "\n".join(lines) + "\n"


def render_json(burden: Burden) -> str:
    return json.dumps(burden.to_json(), indent=2) + "\n"
