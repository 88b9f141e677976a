"""The feedback store of a running service and its card writer, opened (and re-opened) in the background.

A database that is down at start does not stop the CDS service: the store is retried in the background,
``readiness`` says why it is unavailable meanwhile. Once the store has opened, a later outage of the (shared)
database leaves the worker ready: the calls that need the database answer 503 themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace

from cds_service.database import engine_url
from cds_service.feedback.store import CardShown, FeedbackStore, FeedbackStoreError
from cds_service.feedback.writer import SILENT, CardWriter, WriterObserver, WriterStats

log = logging.getLogger(__name__)

RETRY_OPEN_SECONDS = 10.0


class FeedbackRuntime:
    """The app's store and card writer; opens (and re-tries opening) the database in the background."""

    def __init__(self, database_url: str, *, retry_seconds: float = RETRY_OPEN_SECONDS,
                 observer: WriterObserver = SILENT) -> None:
        engine_url(database_url)  # a malformed URL is a configuration error: fail at start
        self.database_url = database_url
        self.retry_seconds = retry_seconds
        self.observer = observer
        self._store: FeedbackStore | None = None
        self._writer: CardWriter | None = None
        self._error: str | None = "feedback store not opened yet"
        self._dropped_while_closed = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the store now; on failure, keep trying in a background thread."""
        if not self._try_open():
            threading.Thread(target=self._retry_loop, name="ketamine-cds-feedback-open", daemon=True).start()

    def _try_open(self) -> bool:
        try:
            store = FeedbackStore.open(self.database_url)
        except FeedbackStoreError as exc:
            self._error = str(exc)
            log.warning("feedback store not available (retrying every %.0f s): %s", self.retry_seconds, exc)
            return False
        with self._lock:
            if self._closed.is_set():
                store.close()
                return True
            self._store, self._writer, self._error = store, CardWriter(store, observer=self.observer), None
        return True

    def _retry_loop(self) -> None:
        while not self._closed.wait(self.retry_seconds):
            if self._try_open():
                log.info("feedback store available")
                return

    @property
    def store(self) -> FeedbackStore | None:
        return self._store

    @property
    def writer(self) -> CardWriter | None:
        return self._writer

    def record(self, cards: Sequence[CardShown]) -> None:
        writer = self._writer
        if writer is None:
            with self._lock:
                self._dropped_while_closed += len(cards)
            self.observer.unrecorded("store-unavailable", len(cards))
            return
        writer.submit(cards)

    def card_stats(self) -> WriterStats:
        """Cards written, dropped (queue full or store unavailable), failed and pending: for metrics."""
        writer = self._writer
        base = writer.stats() if writer is not None else WriterStats(0, 0, 0, 0)
        with self._lock:
            return replace(base, dropped=base.dropped + self._dropped_while_closed)

    def ping(self) -> str | None:
        store = self._store
        if store is None:
            return self._error or "feedback store unavailable"
        return store.ping()

    def readiness(self) -> tuple[bool, str]:
        """(ready, what /readyz reports). Not ready until the store has opened once; after that, never
        because of the database (no live ping, which could outlast the probe's timeout), but the last card
        write's failure is reported as ``degraded``."""
        if self._store is None:
            return False, self._error or "feedback store not opened yet"
        writer = self._writer
        failure = writer.last_failure() if writer is not None else None
        return True, "ok" if failure is None else f"degraded: the last card write failed ({failure})"

    def close(self) -> None:
        """Flush queued cards and release connections. Idempotent."""
        with self._lock:
            self._closed.set()
            writer, store = self._writer, self._store
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
