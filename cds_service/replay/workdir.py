"""The run's work directory: its state (index, results), private, locked, kept for ``--resume``.

``run.json`` says what the run is (fingerprints of the export's files and of the whole run, and its
parameters); ``index.sqlite`` is the export grouped by patient; ``results.sqlite`` one row per patient done.
The directory holds a copy of patient data: it is created private (0700), locked while a run uses it, and
removed when the report is written (unless kept).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO


class RunError(Exception):
    """The run cannot start or go on (exit status 2); the message says why and what to do."""



class WorkDir:
    """The run's private state directory, locked while a run uses it."""

    def __init__(self, path: Path, resume: bool, err: TextIO | None) -> None:
        self.path = path
        self.resume = resume
        self.err = err
        self._lock: int | None = None

    @classmethod
    def open(cls, path: Path, *, resume: bool, err: TextIO | None) -> WorkDir:
        work = cls(path, resume, err)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise RunError(f"work directory {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise RunError(
                f"work directory {path} is in use by another replay; give each run its own --work-dir"
            ) from exc
        work._lock = fd
        return work

    @property
    def index_path(self) -> Path:
        return self.path / "index.sqlite"

    @property
    def results_path(self) -> Path:
        return self.path / "results.sqlite"

    def claim(self, key: Mapping[str, str]) -> None:
        """Start this run here, or continue it with ``--resume``. Without --resume, any earlier state is
        replaced, except an index of the very same files and shard (it is kept and reused)."""
        meta = self.path / "run.json"
        before: dict[str, str] | None = None
        with contextlib.suppress(OSError, ValueError):
            before = json.loads(meta.read_text())
        if before is not None and self.resume:
            if before.get("run") != key["run"]:
                raise RunError(
                    f"--resume: the work directory {self.path} holds another run ({_difference(before, key)}); "
                    "run without --resume to start over, or give another --work-dir"
                )
            self._say(f"replay: resuming the run in {self.path}")
            return
        if before is not None:
            self._say(f"replay: starting over in {self.path} (--resume continues an interrupted run)")
        self._clear(keep_index=before is not None and before.get("index") == key["index"])
        meta.write_text(json.dumps(dict(key)))

    def _clear(self, *, keep_index: bool) -> None:
        for child in self.path.iterdir():
            if child.name == "lock" or (keep_index and child.name.startswith("index.sqlite")):
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _say(self, text: str) -> None:
        if self.err is not None:
            self.err.write(text + "\n")

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def finish(self, *, keep: bool) -> None:
        """Done: remove the directory (it holds patient data) unless asked to keep it."""
        self.release()
        if not keep:
            shutil.rmtree(self.path, ignore_errors=True)


def saved_parameters(work_dir: Path) -> dict[str, Any] | None:
    """The parameters of the run whose state is in ``work_dir`` (None when there is none)."""
    try:
        saved = json.loads((work_dir / "run.json").read_text())
        parameters: dict[str, Any] = json.loads(saved["parameters"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return parameters


def _difference(before: Mapping[str, str], key: Mapping[str, str]) -> str:
    try:
        old, new = json.loads(before.get("parameters", "{}")), json.loads(key["parameters"])
    except ValueError:
        return "its parameters cannot be read"
    changed = [name for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    if changed:
        return "different " + ", ".join(changed)
    if before.get("index") != key["index"]:
        return "the export's files have changed since"
    return "a different order template or knowledge base"
