"""Replaying patients in a worker process (or in the parent with ``--workers 1``): one batch at a time.

Each worker has its own read-only connection to the index, its own knowledge base and service, and counts
the service's warnings instead of printing them (they would garble the progress bar, and a count is what
the report needs). Started by ``run`` through a ``spawn`` process pool: nothing is shared with the parent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from cds_service.knowledge.loader import load_knowledge
from cds_service.replay.evaluate import ReplayService
from cds_service.replay.index import ExportIndex
from cds_service.replay.patient import Plan, referenced_medications, replay_patient


class Worker:
    """What a worker process keeps between batches: the index, the knowledge base, the service."""

    def __init__(self, index_path: str, plan: Plan, rules_config: str | None) -> None:
        self.index = ExportIndex.reader(Path(index_path))
        self.plan = plan
        self.service = ReplayService(load_knowledge(rules_config), plan.hook)
        self.places = self.index.places()
        self.log = LogCounter()

    def replay(self, keys: Sequence[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        with self.log.capturing():
            for key in keys:
                stored = self.index.resources_of(key)
                medications = self.index.medications(referenced_medications(stored))
                result = replay_patient(key, stored, medications, self.service, self.plan, self.places)
                counts = self.log.take()
                if counts:
                    result = dataclasses.replace(result, log=counts)
                out.append((key, json.dumps(result.to_json(), separators=(",", ":"))))
        return out

    def close(self) -> None:
        self.index.close()


class LogCounter(logging.Handler):
    """Counts the replay's service log records (WARNING and above) by logger and level, instead of printing
    them; records of other threads of the process go on to the root logger's handlers as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._thread: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread:
            logging.getLogger().handle(record)
        elif record.levelno >= logging.WARNING:
            self.counts[f"{record.name} {record.levelname}"] += 1

    def take(self) -> tuple[tuple[str, int], ...]:
        taken = tuple(sorted(self.counts.items()))
        self.counts.clear()
        return taken

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        logger = logging.getLogger("cds_service")
        propagate = logger.propagate
        self._thread = threading.get_ident()
        logger.addHandler(self)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.propagate = propagate


_WORKER: Worker | None = None


def start_worker(index_path: str, plan: Plan, rules_config: str | None) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER = Worker(index_path, plan, rules_config)


def replay_batch(keys: list[str]) -> list[tuple[str, str]]:
    if _WORKER is None:  # pragma: no cover - the pool always runs the initializer first
        raise RuntimeError("replay worker not started")
    return _WORKER.replay(keys)
