"""``ketamine-cds replay merge``: the shards' JSON reports (and chart-review lists) into one report.

The shards must be the shards of one run: the same parameters but the shard, the same knowledge base and
service versions, the same input (every shard reads every file), and each of the shards ``0/N`` ...
``N-1/N`` exactly once. Anything else is refused with a message naming the file and the difference: a
merged report is exactly the report one run over the whole export would have given, or there is none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.replay.document import DocumentError, build_document, read_document
from cds_service.replay.index import InputStats
from cds_service.replay.shard import Shard
from cds_service.replay.tally import Tally


class MergeError(ValueError):
    """The inputs are not the shards of one run (exit status 2); the message says why."""


@dataclass(frozen=True)
class Inputs:
    reports: tuple[Path, ...]
    id_lists: tuple[Path, ...]


def collect(paths: Sequence[str], is_id_list: Any) -> Inputs:
    """The report files (``*.json``) and id lists (``*.csv`` with the list's header) among ``paths``; a
    folder stands for the files directly in it."""
    reports: list[Path] = []
    lists: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MergeError(f"{raw}: no such file or folder")
        candidates = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for candidate in candidates:
            if candidate.suffix.lower() == ".json":
                reports.append(candidate)
            elif candidate.suffix.lower() == ".csv" and is_id_list(candidate):
                lists.append(candidate)
            elif not path.is_dir():
                raise MergeError(f"{raw}: neither a replay JSON report nor a --with-ids list")
    if not reports:
        raise MergeError("no replay JSON report among the inputs (run the shards with --format json)")
    return Inputs(tuple(reports), tuple(lists))


def merge_reports(paths: Sequence[Path]) -> dict[str, Any]:
    """The document of the whole run from its shards' documents."""
    parameters: dict[str, Any] | None = None
    versions: tuple[Any, Any] | None = None
    stats: InputStats | None = None
    shards: dict[int, Path] = {}
    count: int | None = None
    total = Tally()
    for path in paths:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            params, inp, tally = read_document(doc, str(path))
        except DocumentError as exc:
            raise MergeError(str(exc)) from exc
        except (OSError, ValueError) as exc:
            raise MergeError(f"{path}: not readable JSON ({exc})") from exc
        shard = Shard.parse(params.pop("shard") or "0/1")
        if count is None:
            count = shard.count
        elif shard.count != count:
            raise MergeError(f"{path}: shard {shard} of a run in {shard.count} shards, the others are in {count}")
        if shard.index in shards:
            raise MergeError(f"{path}: shard {shard} is also in {shards[shard.index]}")
        shards[shard.index] = path
        these = (doc["knowledge_base_version"], doc["service_version"])
        if parameters is None:
            parameters, versions, stats = params, these, inp
        else:
            _same(path, "parameters", parameters, params)
            _same(path, "knowledge base and service versions", versions, these)
            _same(path, "input (the export read)", stats.to_json() if stats else None, inp.to_json())
        total.merge(tally)
    if parameters is None or stats is None or count is None or versions is None:
        raise MergeError("no replay report to merge")
    missing = sorted(set(range(count)) - set(shards))
    if missing:
        raise MergeError(f"shards missing: {', '.join(f'{i}/{count}' for i in missing)}")
    document = build_document({**parameters, "shard": None}, str(versions[0]), stats, total)
    document["service_version"] = versions[1]  # the shards' (checked equal), whichever version merges them
    return document


def _same(path: Path, what: str, first: Any, this: Any) -> None:
    if first != this:
        detail = ""
        if isinstance(first, dict) and isinstance(this, dict):
            keys = sorted(k for k in set(first) | set(this) if first.get(k) != this.get(k))
            detail = f": {', '.join(keys)}"
        raise MergeError(f"{path}: not a shard of the same run: its {what} differ{detail}")
