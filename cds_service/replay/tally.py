"""What a replay counts, per patient and in total. Every figure is a sum, so shards merge exactly.

``PatientResult`` is one patient's contribution (computed by a worker, stored for ``--resume``); ``Tally``
adds them up. Nothing here depends on which topics exist or what cards say: topics, indicators, checklist
criteria and data-gap keys are counted as the service names them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

EXAMPLES_PER_PROBLEM: Final = 5
URGENCY: Final = ("critical", "warning", "info")  # most urgent first
NO_CARDS: Final = "no cards"

Place = tuple[str, str, int]  # (file label, "line" or "entry", number); number 0: the whole file


@dataclass
class ProblemLog:
    """Problems by kind: how many, and where the first few are (in file and line order)."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Place]] = field(default_factory=dict)

    def add(self, kind: str, place: Place, count: int = 1) -> None:
        self.counts[kind] += count
        self._keep(kind, [place])

    def merge(self, other: ProblemLog) -> None:
        self.counts.update(other.counts)
        for kind, places in other.examples.items():
            self._keep(kind, places)

    def _keep(self, kind: str, places: Iterable[Place]) -> None:
        kept = self.examples.setdefault(kind, [])
        kept.extend(places)
        kept.sort(key=_place_order)
        del kept[EXAMPLES_PER_PROBLEM:]

    def to_json(self) -> dict[str, Any]:
        return {
            kind: {"count": self.counts[kind], "examples": [_place_json(p) for p in self.examples.get(kind, ())]}
            for kind in sorted(self.counts)
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProblemLog:
        log = cls()
        for kind, entry in doc.items():
            log.counts[kind] += int(entry["count"])
            log._keep(kind, [_place_from_json(e) for e in entry["examples"]])
        return log


def _place_order(place: Place) -> tuple[str, int]:
    return place[0], place[2]


def _place_json(place: Place) -> dict[str, Any]:
    label, unit, number = place
    return {"file": label, unit: number} if number else {"file": label}


def _place_from_json(doc: Mapping[str, Any]) -> Place:
    for unit in ("line", "entry"):
        if unit in doc:
            return str(doc["file"]), unit, int(doc[unit])
    return str(doc["file"]), "line", 0


def describe_place(place: Place) -> str:
    label, unit, number = place
    return f"{label} {unit} {number}" if number else label


@dataclass(frozen=True)
class OrderResult:
    """One replayed order: what the service answered (status 200 and cards, or the error it would give)."""

    instant: str  # the evaluation instant (ISO 8601): the order's authoredOn, or --now
    order_id: str | None  # the MedicationRequest id of a real order (for --with-ids); None for a template
    status: int  # 200, or the HTTP status the service would have answered instead of cards
    cards: tuple[tuple[str, str], ...] = ()  # (topic code, indicator), in the service's order
    not_documented: tuple[str, ...] = ()  # checklist criteria the record did not document
    not_obtained: tuple[str, ...] = ()  # data the service could not obtain (data-gap keys)
    skipped: tuple[str, ...] = ()  # resource types the record builder set aside as invalid
    left_out: int = 0  # resources left out as dated after the instant
    notes: tuple[str, ...] = ()  # how the order was made, e.g. "dose-per-kg-no-weight"

    def to_json(self) -> list[Any]:
        return [
            self.instant, self.order_id, self.status, [list(c) for c in self.cards], list(self.not_documented),
            list(self.not_obtained), list(self.skipped), self.left_out, list(self.notes),
        ]  # fmt: skip

    @classmethod
    def from_json(cls, row: list[Any]) -> OrderResult:
        instant, order_id, status, cards, not_documented, not_obtained, skipped, left_out, notes = row
        return cls(
            instant, order_id, int(status), tuple((str(t), str(i)) for t, i in cards), tuple(not_documented),
            tuple(not_obtained), tuple(skipped), int(left_out), tuple(notes),
        )  # fmt: skip


@dataclass(frozen=True)
class PatientResult:
    """One patient's contribution to the tally."""

    in_export: bool  # the patient's Patient resource is in the export
    left_out: str | None = None  # why the patient was not evaluated (None: evaluated)
    orders: tuple[OrderResult, ...] = ()
    problems: tuple[tuple[str, Place], ...] = ()  # (kind, place)
    log: tuple[tuple[str, int], ...] = ()  # service log records at WARNING or above: (logger level, count)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"in_export": self.in_export, "orders": [o.to_json() for o in self.orders]}
        if self.left_out:
            doc["left_out"] = self.left_out
        if self.problems:
            doc["problems"] = [[kind, list(place)] for kind, place in self.problems]
        if self.log:
            doc["log"] = [list(entry) for entry in self.log]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PatientResult:
        return cls(
            in_export=bool(doc["in_export"]),
            left_out=doc.get("left_out"),
            orders=tuple(OrderResult.from_json(o) for o in doc["orders"]),
            problems=tuple((str(k), (str(p[0]), str(p[1]), int(p[2]))) for k, p in doc.get("problems", ())),
            log=tuple((str(name), int(n)) for name, n in doc.get("log", ())),
        )


@dataclass
class Tally:
    """Sums over patients. ``add`` takes one patient; ``merge`` another tally (a shard's)."""

    patients_in_export: int = 0
    patients: int = 0  # evaluated: at least one order replayed
    patients_left_out: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    orders_refused: Counter[str] = field(default_factory=Counter)  # HTTP status -> orders
    cards: int = 0
    cards_per_order: Counter[int] = field(default_factory=Counter)
    orders_with_indicator: Counter[str] = field(default_factory=Counter)  # orders with at least one such card
    orders_by_urgency: Counter[str] = field(default_factory=Counter)  # orders by their most urgent card
    topics: dict[str, Counter[str]] = field(default_factory=dict)
    orders_with_topic: Counter[str] = field(default_factory=Counter)
    patients_with_topic: Counter[str] = field(default_factory=Counter)
    not_documented: Counter[str] = field(default_factory=Counter)
    not_obtained: Counter[str] = field(default_factory=Counter)
    skipped_as_invalid: Counter[str] = field(default_factory=Counter)
    orders_with_data_left_out: int = 0
    resources_left_out: int = 0
    notes: Counter[str] = field(default_factory=Counter)
    problems: ProblemLog = field(default_factory=ProblemLog)
    service_log: Counter[str] = field(default_factory=Counter)

    def add(self, result: PatientResult) -> None:
        self.patients_in_export += result.in_export
        for kind, place in result.problems:
            self.problems.add(kind, place)
        self.service_log.update(dict(result.log))
        if result.left_out is not None:
            self.patients_left_out[result.left_out] += 1
            return
        self.patients += 1
        patient_topics: set[str] = set()
        for order in result.orders:
            self._add_order(order)
            patient_topics.update(topic for topic, _ in order.cards)
        self.patients_with_topic.update(patient_topics)

    def _add_order(self, order: OrderResult) -> None:
        self.orders += 1
        self.notes.update(order.notes)
        if order.left_out:
            self.orders_with_data_left_out += 1
            self.resources_left_out += order.left_out
        if order.status != 200:
            self.orders_refused[str(order.status)] += 1
            return
        self.cards += len(order.cards)
        self.cards_per_order[len(order.cards)] += 1
        indicators = {indicator for _, indicator in order.cards}
        self.orders_with_indicator.update(indicators)
        self.orders_by_urgency[most_urgent(indicators)] += 1
        for topic, indicator in order.cards:
            self.topics.setdefault(topic, Counter())[indicator] += 1
        self.orders_with_topic.update({topic for topic, _ in order.cards})
        self.not_documented.update(set(order.not_documented))
        self.not_obtained.update(set(order.not_obtained))
        self.skipped_as_invalid.update(set(order.skipped))

    def merge(self, other: Tally) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _COUNTERS:
            getattr(self, name).update(getattr(other, name))
        for topic, by_indicator in other.topics.items():
            self.topics.setdefault(topic, Counter()).update(by_indicator)
        self.problems.merge(other.problems)


_COUNTS: Final = ("patients_in_export", "patients", "orders", "cards", "orders_with_data_left_out",
                  "resources_left_out")  # fmt: skip
_COUNTERS: Final = ("patients_left_out", "orders_refused", "cards_per_order", "orders_with_indicator",
                    "orders_by_urgency", "orders_with_topic", "patients_with_topic", "not_documented", "not_obtained",
                    "skipped_as_invalid", "notes", "service_log")  # fmt: skip


def most_urgent(indicators: Iterable[str]) -> str:
    """The most urgent of ``indicators`` (an unknown one ranks after info); ``NO_CARDS`` when there is none."""
    ranked = sorted(indicators, key=lambda i: (URGENCY.index(i) if i in URGENCY else len(URGENCY), i))
    return ranked[0] if ranked else NO_CARDS
