"""The background card writer: never blocks, batches, counts drops and failures, flushes at close."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from cds_service.feedback.store import CardShown, FeedbackStore
from cds_service.feedback.writer import CardWriter


class GatedStore:
    """Stands in for the database: records batches, and can be held shut to fill the queue."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[CardShown]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = fail

    def record_cards(self, cards: list[CardShown]) -> None:
        self.entered.set()
        self.gate.wait()
        if self.fail:
            raise ConnectionError("database down")
        self.batches.append(list(cards))


def cards(n: int, now: datetime, prefix: str = "c") -> list[CardShown]:
    return [CardShown(f"{prefix}{i}", "s", "order-sign", "hi", "psychosis", "critical", now) for i in range(n)]


def test_cards_are_written_in_batches_and_close_flushes(now: datetime) -> None:
    store = GatedStore()
    store.gate.clear()
    writer = CardWriter(store, batch_cards=10)  # type: ignore[arg-type]
    writer.submit(cards(1, now, "first"))
    assert store.entered.wait(5)  # the thread holds the first call while the rest queue up
    for i in range(30):
        assert writer.submit(cards(1, now, f"q{i}-"))
    store.gate.set()
    writer.close()
    sizes = [len(b) for b in store.batches]
    assert sum(sizes) == 31
    assert max(sizes) <= 10 and len(sizes) >= 4  # 1, then batches of at most 10
    assert writer.stats().written == 31


def test_a_full_queue_drops_and_counts_instead_of_blocking(now: datetime) -> None:
    store = GatedStore()
    store.gate.clear()
    writer = CardWriter(store, max_pending_calls=2)  # type: ignore[arg-type]
    writer.submit(cards(1, now, "held"))
    assert store.entered.wait(5)
    accepted = [writer.submit(cards(3, now, f"x{i}-")) for i in range(5)]
    assert accepted == [True, True, False, False, False]
    assert writer.stats().dropped == 9
    store.gate.set()
    writer.close()
    assert writer.stats().written == 7


def test_a_database_failure_is_counted_and_the_writer_keeps_going(now: datetime) -> None:
    store = GatedStore(fail=True)
    writer = CardWriter(store)  # type: ignore[arg-type]
    writer.submit(cards(2, now))
    assert writer.flush()
    assert writer.stats().failed == 2
    store.fail = False
    writer.submit(cards(1, now, "later"))
    writer.close()
    assert writer.stats().written == 1


def test_after_close_nothing_is_accepted(now: datetime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = FeedbackStore.open(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    writer = CardWriter(store)
    writer.submit(cards(3, now))
    writer.close()
    writer.close()  # idempotent
    assert writer.submit(cards(1, now, "late")) is False
    assert store.shown_counts(None) == [("psychosis", "critical", 3)]
    store.close()


def test_calls_arriving_while_the_writer_lingers_share_one_transaction(now: datetime) -> None:
    # one transaction per hook call costs the request thread ~1 ms of interpreter time under load
    # (scripts/measure_feedback_writes.py); batching calls makes card recording unnoticeable
    store = GatedStore()
    writer = CardWriter(store, batch_cards=3, linger_seconds=30)  # type: ignore[arg-type]
    writer.submit(cards(1, now, "a"))
    while writer.stats().pending:  # the thread has taken the first call and now waits for more
        time.sleep(0.001)
    writer.submit(cards(1, now, "b"))
    writer.submit(cards(1, now, "c"))  # the batch is full: written at once, without waiting 30 s
    assert writer.flush(10)
    assert [[c.card_uuid for c in b] for b in store.batches] == [["a0", "b0", "c0"]]
    writer.close()


def test_close_does_not_wait_for_the_linger(now: datetime) -> None:
    store = GatedStore()
    writer = CardWriter(store, linger_seconds=30)  # type: ignore[arg-type]
    writer.submit(cards(2, now))
    writer.close(timeout=10)
    assert writer.stats().written == 2


class Observed:
    """A WriterObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.depths: list[int] = []

    def recorded(self, cards: int) -> None:
        self.unrecorded("recorded", cards)

    def unrecorded(self, reason: str, cards: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + cards

    def queue_depth(self, calls: int) -> None:
        self.depths.append(calls)


def test_every_card_is_reported_recorded_or_why_not_and_the_queue_depth_with_it(now: datetime) -> None:
    store = GatedStore()
    store.gate.clear()
    observed = Observed()
    writer = CardWriter(store, max_pending_calls=2, observer=observed)  # type: ignore[arg-type]
    writer.submit(cards(1, now, "held"))
    assert store.entered.wait(5)
    for i in range(4):  # two wait in the queue, two find it full
        writer.submit(cards(3, now, f"x{i}-"))
    assert observed.counts == {"queue-full": 6}
    assert max(observed.depths) == 2
    store.fail = True
    store.gate.set()
    assert writer.flush()
    assert observed.counts["write-failed"] == 7
    assert writer.last_failure() == "ConnectionError"
    store.fail = False
    writer.submit(cards(2, now, "later"))
    assert writer.flush()
    assert observed.counts["recorded"] == 2
    assert writer.last_failure() is None  # a write that succeeds clears the failure
    assert observed.depths[-1] == 0
    writer.close()
    writer.submit(cards(4, now, "too-late"))
    assert observed.counts["closed"] == 4
