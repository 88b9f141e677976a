"""One replay run: index the export, replay every patient on all cores, sum the results. Restartable.

The run's state lives in its work directory (``workdir``): the index, and one result row per patient done,
committed as results arrive. A run that is interrupted (Ctrl-C, SIGTERM, a lost pod) continues with
``--resume`` where it stopped: files already indexed are not read again, patients already replayed are not
replayed again.

Patients are replayed in worker processes (``--workers``, default: the CPUs this process may use; ``worker``);
the parent hands out small batches of patient ids, never more than a few per worker at a time, and stores the
results, so memory stays flat however large the export.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

from cds_service.knowledge.model import Knowledge
from cds_service.replay import ids
from cds_service.replay.document import build_document
from cds_service.replay.evaluate import ReplayService, read_types
from cds_service.replay.index import ExportIndex, InputStats, transaction
from cds_service.replay.patient import Plan
from cds_service.replay.progress import Progress
from cds_service.replay.shard import Shard
from cds_service.replay.source import SourceFile, discover
from cds_service.replay.tally import PatientResult, Tally
from cds_service.replay.workdir import RunError, WorkDir, saved_parameters
from cds_service.replay.worker import Worker, replay_batch, start_worker

__all__ = ["RunError", "RunOptions", "RunSummary", "run", "run_parameters", "saved_parameters"]

INDEX_VERSION: Final = 1  # bump when the index layout or what it keeps changes
_BATCH: Final = 16  # patients per task handed to a worker
_PAGE: Final = 1000  # patient ids read from the index at a time
_IN_FLIGHT_PER_WORKER: Final = 3


@dataclass(frozen=True)
class RunOptions:
    sources: tuple[str, ...]
    plan: Plan
    template_name: str | None
    shard: Shard
    workers: int
    work_dir: Path
    resume: bool = False
    keep_work: bool = False
    rules_config: str | None = None
    progress: bool = True  # progress and the closing summary line on stderr


@dataclass
class RunSummary:
    stats: InputStats  # what reading the export found
    tally: Tally = field(default_factory=Tally)
    document: dict[str, Any] = field(default_factory=dict)  # the report
    patients: int = 0  # patients of this shard in the export
    replayed_now: int = 0  # patients replayed by this invocation (the rest were done before a resume)
    seconds: dict[str, float] = field(default_factory=dict)  # "index", "replay": wall time of each phase


def run(options: RunOptions, kb: Knowledge, *, with_ids: Path | None = None, err: TextIO = sys.stderr) -> RunSummary:
    """Replay the export and return the report document; ``with_ids``: also write the chart-review list."""
    files = discover(options.sources)  # SourceError: missing or empty SOURCE
    try:
        ReplayService(kb, options.plan.hook)  # the knowledge base must serve this plan
    except ValueError as exc:
        raise RunError(str(exc)) from exc
    types = read_types(options.plan.hook)
    parameters = run_parameters(options)
    work = WorkDir.open(options.work_dir, resume=options.resume, err=err if options.progress else None)
    try:
        with _terminate_as_interrupt():
            work.claim(_run_key(files, options, parameters, kb.version, types))
            summary = _run_in(work, files, options, types, with_ids, err)
    except BaseException:
        work.release()
        raise
    work.finish(keep=options.keep_work)
    summary.document = build_document(parameters, kb.version, summary.stats, summary.tally)
    return summary


def _run_in(
    work: WorkDir,
    files: Sequence[SourceFile],
    options: RunOptions,
    types: frozenset[str],
    with_ids: Path | None,
    err: TextIO,
) -> RunSummary:
    started = time.monotonic()
    index = _index(work, files, options, types, err)
    try:
        summary = RunSummary(stats=index.input_stats(), seconds={"index": time.monotonic() - started})
        stats = summary.stats
        if not sum(stats.resources.values()) and not sum(stats.ignored_types.values()):
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(stats.problems.counts.items())) or "no problem"
            raise RunError(f"SOURCE holds no FHIR resource ({len(files)} file(s) read; {kinds})")
        started = time.monotonic()
        with _ResultStore(work.results_path) as results:
            summary.replayed_now = _replay_all(index, results, options, work, err)
            summary.seconds["replay"] = time.monotonic() - started
            for result in results.all():
                summary.tally.add(result)
            if with_ids is not None:
                ids.write_list(with_ids, results.rows())
        summary.patients = index.patient_count()
        return summary
    finally:
        index.close()


def run_parameters(options: RunOptions) -> dict[str, Any]:
    """What the run is, as the report states it: everything that changes a figure, nothing that does not."""
    plan = options.plan
    return {
        "mode": plan.mode,
        "hook": plan.hook,
        "order_template": options.template_name,
        "cohort": plan.cohort if plan.mode == "order" else None,
        "now": plan.now.isoformat().replace("+00:00", "Z") if plan.now else None,
        "sources": list(options.sources),
        "shard": None if options.shard.is_whole else str(options.shard),
    }


def _run_key(
    files: Sequence[SourceFile],
    options: RunOptions,
    parameters: Mapping[str, Any],
    kb_version: str,
    types: frozenset[str],
) -> dict[str, str]:
    """Fingerprints of the index (files and shard) and of the whole run (plus the plan and knowledge base)."""
    listing = []
    for file in files:
        stat = file.path.stat()
        listing.append([file.label, stat.st_size, stat.st_mtime_ns])
    index_key = _digest(
        {"version": INDEX_VERSION, "files": listing, "shard": str(options.shard), "types": sorted(types)}
    )
    plan = options.plan
    run_key = _digest({"index": index_key, "parameters": parameters, "template": plan.template, "kb": kb_version})
    return {"index": index_key, "run": run_key, "parameters": json.dumps(parameters, sort_keys=True)}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- index


def _index(
    work: WorkDir, files: Sequence[SourceFile], options: RunOptions, types: frozenset[str], err: TextIO
) -> ExportIndex:
    key = json.loads((work.path / "run.json").read_text())["index"]
    index = ExportIndex.build(work.index_path, key)
    if index.complete:
        return index
    sizes = [f.path.stat().st_size for f in files]
    progress = Progress(err, enabled=options.progress, label="replay: reading", total=sum(sizes) // 1024, unit="KiB")
    try:
        for n, file in enumerate(files):
            if not index.file_done(n):
                index.add_file(n, file, options.shard, types)
            progress.advance(sizes[n] // 1024)
        index.finish()
    except BaseException:
        index.close()
        raise
    progress.close()
    return index


# ---------------------------------------------------------------------------------------------- results


class _ResultStore:
    """results.sqlite: one row per patient replayed, JSON of its ``PatientResult``."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS results(patient TEXT PRIMARY KEY, body TEXT NOT NULL)")

    def __enter__(self) -> _ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    def done_among(self, keys: Sequence[str]) -> set[str]:
        marks = ",".join("?" * len(keys))
        return {k for (k,) in self._db.execute(f"SELECT patient FROM results WHERE patient IN ({marks})", keys)}

    def add(self, rows: Sequence[tuple[str, str]]) -> None:
        with transaction(self._db):
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def all(self) -> Iterator[PatientResult]:
        for (body,) in self._db.execute("SELECT body FROM results ORDER BY patient"):
            yield PatientResult.from_json(json.loads(body))

    def rows(self) -> Iterator[tuple[str, PatientResult]]:
        for key, body in self._db.execute("SELECT patient, body FROM results ORDER BY patient"):
            yield key, PatientResult.from_json(json.loads(body))


def _pending(index: ExportIndex, results: _ResultStore) -> Iterator[list[str]]:
    """Batches of patient ids not replayed yet, in id order, read from the index a page at a time."""
    after: str | None = None
    batch: list[str] = []
    while True:
        keys = index.patients_after(after, _PAGE)
        if not keys:
            break
        after = keys[-1]
        done = results.done_among(keys)
        for key in keys:
            if key not in done:
                batch.append(key)
                if len(batch) == _BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _replay_all(index: ExportIndex, results: _ResultStore, options: RunOptions, work: WorkDir, err: TextIO) -> int:
    total = index.patient_count()
    already = results.count()
    progress = Progress(
        err, enabled=options.progress, label="replay: patients", total=total, unit="patients", done=already
    )
    replayed = 0

    def store(rows: list[tuple[str, str]]) -> None:
        nonlocal replayed
        results.add(rows)
        replayed += len(rows)
        progress.advance(len(rows))

    args = (str(work.index_path), options.plan, options.rules_config)
    if options.workers <= 1:
        worker = Worker(*args)
        try:
            for batch in _pending(index, results):
                store(worker.replay(batch))
        finally:
            worker.close()
    else:
        _replay_in_pool(index, results, options.workers, args, store)
    progress.close()
    return replayed


def _replay_in_pool(
    index: ExportIndex,
    results: _ResultStore,
    workers: int,
    args: tuple[str, Plan, str | None],
    store: Any,
) -> None:
    limit = workers * _IN_FLIGHT_PER_WORKER
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=start_worker, initargs=args
    )
    in_flight: set[Future[list[tuple[str, str]]]] = set()
    try:
        for batch in _pending(index, results):
            while len(in_flight) >= limit:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    store(future.result())
            in_flight.add(executor.submit(replay_batch, batch))
        for future in in_flight:
            store(future.result())
        in_flight = set()
    finally:
        for future in in_flight:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a pod being stopped) ends the run like Ctrl-C: results so far are kept for --resume."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


