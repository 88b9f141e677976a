"""Background writer for cards shown: the hook response never waits for the database.

``submit`` only appends to a bounded queue (microseconds); one daemon thread drains it in batches. After the
first call's cards arrive it waits up to ``linger_seconds`` for more, so that under load one transaction
carries many calls: the thread then holds the interpreter (GIL) and the database far less per hook call.
When the queue is full the cards are dropped and counted (a warning is logged, rate-limited), because
answering the EHR quickly matters more than a complete override report. ``close`` flushes at shutdown.

What the writer could not record, and how many calls wait in its queue, go to a :class:`WriterObserver`
(the service's is its Prometheus metrics; by default nothing).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cds_service.feedback.store import CardShown, FeedbackStore

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_CALLS = 10_000  # hook calls whose cards wait to be written
DEFAULT_BATCH_CARDS = 500
DEFAULT_LINGER_SECONDS = 0.2  # how long a card may wait to be batched with others (never the hook response)
_DROP_LOG_INTERVAL_S = 60.0


class WriterObserver(Protocol):
    """Where the writer reports what happened to the cards it was given. Implementations never raise."""

    def recorded(self, cards: int) -> None:
        """``cards`` were written to the store."""

    def unrecorded(self, reason: str, cards: int) -> None:
        """``cards`` will never be written: ``reason`` is ``queue-full``, ``write-failed``, ``closed`` or
        (from the runtime) ``store-unavailable``."""

    def queue_depth(self, calls: int) -> None:
        """``calls`` hook calls' cards wait in the queue now."""


class _Silent:
    def recorded(self, cards: int) -> None:
        pass

    def unrecorded(self, reason: str, cards: int) -> None:
        pass

    def queue_depth(self, calls: int) -> None:
        pass


SILENT: WriterObserver = _Silent()


@dataclass(frozen=True)
class WriterStats:
    written: int
    dropped: int
    failed: int
    pending: int


class CardWriter:
    """A bounded queue of card batches and the thread that writes them."""

    def __init__(
        self,
        store: FeedbackStore,
        *,
        max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS,
        batch_cards: int = DEFAULT_BATCH_CARDS,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
        observer: WriterObserver = SILENT,
    ) -> None:
        self.store = store
        self.observer = observer
        self.max_pending_calls = max_pending_calls
        self.batch_cards = batch_cards
        self.linger_seconds = linger_seconds
        self._lock = threading.Lock()
        self._written = self._dropped = self._failed = 0
        self._last_failure: str | None = None  # exception type of the last write, if it failed
        self._last_drop_log = 0.0
        self._closed = False
        # One queue item is one hook call's cards (a call returns at most a few dozen).
        self._queue: queue.Queue[list[CardShown] | None] = queue.Queue(maxsize=max_pending_calls)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def _ensure_thread(self) -> None:
        """Start the thread on first use, and again in a forked worker (the parent's thread is not there)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.Queue(maxsize=self.max_pending_calls)
                self._pid = os.getpid()
                self._thread = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ketamine-cds-card-writer", daemon=True)
                self._thread.start()

    def submit(self, cards: Sequence[CardShown]) -> bool:
        """Queue cards for writing without blocking; False (and counted) when they had to be dropped."""
        if not cards:
            return False
        if self._closed:
            self.observer.unrecorded("closed", len(cards))
            return False
        self._ensure_thread()
        try:
            self._queue.put_nowait(list(cards))
        except queue.Full:
            self._note_dropped(len(cards))
            return False
        self.observer.queue_depth(self._queue.qsize())
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("card writer: queue still full at shutdown; pending cards are lost")
            return
        thread.join(timeout)

    def last_failure(self) -> str | None:
        """The exception type of the most recent write if it failed; None after a write succeeds."""
        with self._lock:
            return self._last_failure

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(self._written, self._dropped, self._failed, self._queue.qsize())

    def _note_dropped(self, n: int) -> None:
        self.observer.unrecorded("queue-full", n)
        now = time.monotonic()
        with self._lock:
            self._dropped += n
            total = self._dropped
            should_log = now - self._last_drop_log >= _DROP_LOG_INTERVAL_S
            if should_log:
                self._last_drop_log = now
        if should_log:
            log.warning(
                "card writer: queue full, %d cards dropped so far (feedback for them will be unattributed)",
                total,
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[CardShown] = []
            items = 1
            stop = item is None
            if item is not None:
                batch.extend(item)
            deadline = time.monotonic() + self.linger_seconds
            while not stop and len(batch) < self.batch_cards:
                try:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                items += 1
                if more is None:
                    stop = True
                else:
                    batch.extend(more)
            if batch:
                self._write(batch)
            for _ in range(items):
                self._queue.task_done()
            self.observer.queue_depth(self._queue.qsize())
            if stop:
                return

    def _write(self, batch: list[CardShown]) -> None:
        try:
            self.store.record_cards(batch)
        except Exception as exc:  # the thread must survive a database outage
            with self._lock:
                self._failed += len(batch)
                self._last_failure = type(exc).__name__
            self.observer.unrecorded("write-failed", len(batch))
            log.warning("card writer: %d cards not recorded: %s", len(batch), type(exc).__name__)
        else:
            with self._lock:
                self._written += len(batch)
                self._last_failure = None
            self.observer.recorded(len(batch))
