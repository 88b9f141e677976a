"""The export on disk, grouped by patient: one SQLite file, so memory stays flat whatever the export's size.

Building it reads every file once (``ExportIndex.add_file``, one transaction per file, so an interrupted
build resumes at the first file not finished) and keeps, for this shard's patients only, the resources of the
types the service reads, each with where it came from. Medications (they name no patient) are kept for all.
Reading statistics and problems are kept per file, so every shard, having read the same files, reports the
same input figures. ``finish`` then indexes the resources by patient and lists the patients.

Tables::

    meta(key, value)                           fingerprint of the export and shard; "complete" when finished
    files(n, label, unit, done, stats)         one row per source file; stats: counts and problems (JSON)
    resources(patient, rtype, file, position, body)
    medications(id, body)                      first copy of each Medication id wins
    patients(patient, present)                 present: the patient's Patient resource is in the export
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cds_service.replay.shard import Shard
from cds_service.replay.source import (
    Problem,
    SourceFile,
    patient_key,
    read_resources,
    with_canonical_reference,
)
from cds_service.replay.tally import ProblemLog

_BATCH: Final = 2000
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(n INTEGER PRIMARY KEY, label TEXT NOT NULL, unit TEXT NOT NULL,
                                 done INTEGER NOT NULL DEFAULT 0, stats TEXT);
CREATE TABLE IF NOT EXISTS resources(patient TEXT NOT NULL, rtype TEXT NOT NULL, file INTEGER NOT NULL,
                                     position INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS medications(id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients(patient TEXT PRIMARY KEY, present INTEGER NOT NULL);
"""


@dataclass
class InputStats:
    """What reading the export found: identical in every shard, because every shard reads every file."""

    files: int = 0
    resources: Counter[str] = field(default_factory=Counter)  # read, by type (all patients, every shard)
    ignored_types: Counter[str] = field(default_factory=Counter)  # types the service does not read
    problems: ProblemLog = field(default_factory=ProblemLog)

    def add(self, other: InputStats) -> None:
        self.files += other.files
        self.resources.update(other.resources)
        self.ignored_types.update(other.ignored_types)
        self.problems.merge(other.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "resources": dict(sorted(self.resources.items())),
            "ignored_types": dict(sorted(self.ignored_types.items())),
            "problems": self.problems.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InputStats:
        return cls(
            files=int(doc["files"]),
            resources=Counter({str(k): int(v) for k, v in doc["resources"].items()}),
            ignored_types=Counter({str(k): int(v) for k, v in doc["ignored_types"].items()}),
            problems=ProblemLog.from_json(doc["problems"]),
        )


class ExportIndex:
    """One index file. ``build`` opens it for writing; ``reader`` opens a finished one read-only."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def build(cls, path: Path, fingerprint: str) -> ExportIndex:
        """Open (or create) the index at ``path`` for ``fingerprint``; a file built for another is emptied."""
        db = _writable(path)
        row = db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None or row[0] != fingerprint:
            db.close()
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
            db = _writable(path)
            db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
        return cls(db)

    @classmethod
    def reader(cls, path: Path) -> ExportIndex:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        return cls(db)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ building

    @property
    def complete(self) -> bool:
        return self._db.execute("SELECT 1 FROM meta WHERE key='complete'").fetchone() is not None

    def file_done(self, n: int) -> bool:
        return self._db.execute("SELECT done FROM files WHERE n=?", (n,)).fetchone() == (1,)

    def add_file(self, n: int, file: SourceFile, shard: Shard, read_types: frozenset[str]) -> InputStats:
        """Read ``file`` (number ``n`` in the run's file order) into the index, in one transaction."""
        db = self._db
        stats = InputStats(files=1)
        log = stats.problems
        unit = "line" if file.lines else "entry"

        def problem(p: Problem) -> None:
            log.add(p.kind, (p.file, unit, p.position))

        with transaction(db):
            db.execute("DELETE FROM resources WHERE file=?", (n,))  # a file half-read before an interruption
            db.execute("INSERT OR REPLACE INTO files(n, label, unit, done) VALUES (?, ?, ?, 0)", (n, file.label, unit))
            self._read_into(n, file, shard, read_types, stats, problem)
            db.execute("UPDATE files SET done=1, stats=? WHERE n=?", (json.dumps(stats.to_json()), n))
        return stats

    def _read_into(
        self,
        n: int,
        file: SourceFile,
        shard: Shard,
        read_types: frozenset[str],
        stats: InputStats,
        problem: Callable[[Problem], None],
    ) -> None:
        db = self._db
        rows: list[tuple[str, str, int, int, str]] = []
        medications: list[tuple[str, str]] = []
        for position, resource in read_resources(file, problem):
            rtype = str(resource["resourceType"])
            if rtype not in read_types:
                stats.ignored_types[rtype] += 1
                continue
            stats.resources[rtype] += 1
            if rtype == "Medication":
                rid = resource.get("id")
                if isinstance(rid, str) and rid:
                    medications.append((rid, json.dumps(resource, separators=(",", ":"))))
                continue
            key = patient_key(resource)
            if key is None:
                problem(Problem("no-patient", file.label, position))
                continue
            rid = resource.get("id")
            if not isinstance(rid, str) or not rid:  # a FHIR server would have given it one: so does replay
                problem(Problem("no-id", file.label, position))  # counted by every shard, as all input is
                resource = {**resource, "id": f"replay-{n}-{position}"}
            if not shard.owns(key):
                continue
            body = json.dumps(with_canonical_reference(resource, key), separators=(",", ":"))
            rows.append((key, rtype, n, position, body))
            if len(rows) >= _BATCH:
                db.executemany("INSERT INTO resources VALUES (?, ?, ?, ?, ?)", rows)
                rows.clear()
            if len(medications) >= _BATCH:
                db.executemany("INSERT OR IGNORE INTO medications VALUES (?, ?)", medications)
                medications.clear()
        db.executemany("INSERT INTO resources VALUES (?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT OR IGNORE INTO medications VALUES (?, ?)", medications)

    def finish(self) -> None:
        """Index the resources by patient and list the patients (idempotent)."""
        if self.complete:
            return
        db = self._db
        with transaction(db):
            db.execute("CREATE INDEX IF NOT EXISTS resources_by_patient ON resources(patient, file, position)")
            db.execute("DELETE FROM patients")
            db.execute(
                "INSERT INTO patients SELECT patient, MAX(rtype = 'Patient') FROM resources GROUP BY patient"
            )
            db.execute("INSERT INTO meta VALUES ('complete', '1')")

    # ------------------------------------------------------------------ reading

    def input_stats(self) -> InputStats:
        total = InputStats()
        for (stats,) in self._db.execute("SELECT stats FROM files WHERE done=1 ORDER BY n"):
            total.add(InputStats.from_json(json.loads(stats)))
        return total

    def places(self) -> dict[int, tuple[str, str]]:
        """File number -> (label, "line" or "entry"): how the report names a place in the export."""
        return {n: (label, unit) for n, label, unit in self._db.execute("SELECT n, label, unit FROM files")}

    def patient_count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM patients").fetchone()
        return int(row[0])

    def patients_after(self, after: str | None, limit: int) -> list[str]:
        """The next ``limit`` patient keys in key order, after ``after`` (None: from the first)."""
        if after is None:
            query = self._db.execute("SELECT patient FROM patients ORDER BY patient LIMIT ?", (limit,))
        else:
            query = self._db.execute(
                "SELECT patient FROM patients WHERE patient > ? ORDER BY patient LIMIT ?", (after, limit)
            )
        return [key for (key,) in query]

    def resources_of(self, patient: str) -> list[StoredResource]:
        """The patient's resources in export order (file, then line)."""
        rows = self._db.execute(
            "SELECT file, position, body FROM resources WHERE patient=? ORDER BY file, position", (patient,)
        )
        return [StoredResource(file, position, json.loads(body)) for file, position, body in rows]

    def medications(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for rid, body in self._db.execute(f"SELECT id, body FROM medications WHERE id IN ({marks})", chunk):
                found[rid] = json.loads(body)
        return found


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction: committed at the end, rolled back on any exception (an interruption included)."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")



def _writable(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last transactions, never corrupt the file
    db.executescript(_SCHEMA)
    return db


@dataclass(frozen=True, slots=True)
class StoredResource:
    file: int
    position: int
    resource: dict[str, Any]
