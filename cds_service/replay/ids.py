"""``--with-ids FILE``: the one output that names patients, a CSV for chart review. Written only on request.

One row per replayed order, sorted by patient id, then order date, then order id (so the lists of shards
merge into exactly the list of one run): ``patient_id, order_id, order_date, status, cards, most_urgent,
topics`` (``topic:indicator`` pairs joined by ``|``, in the service's order). ``order_id`` is the
MedicationRequest id of a real order and empty for a template order. The file is created readable by its
owner only (0600): it holds patient identifiers.
"""

from __future__ import annotations

import csv
import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

from cds_service.replay.tally import PatientResult, most_urgent

HEADER: Final = ("patient_id", "order_id", "order_date", "status", "cards", "most_urgent", "topics")


class IdsError(ValueError):
    """A file given to merge as a chart-review list is not one; the message says why."""


def rows_of(key: str, result: PatientResult) -> list[tuple[str, ...]]:
    rows = [
        (
            key,
            order.order_id or "",
            order.instant,
            str(order.status),
            str(len(order.cards)),
            most_urgent(i for _, i in order.cards) if order.status == 200 else "",
            "|".join(f"{topic}:{indicator}" for topic, indicator in order.cards),
        )
        for order in result.orders
    ]
    return sorted(rows, key=_order)


def _order(row: Sequence[str]) -> tuple[str, str, str]:
    return row[0], row[2], row[1]


def write_list(path: Path, patients: Iterable[tuple[str, PatientResult]]) -> None:
    """Write the list for ``patients`` given in patient id order (as the results store yields them)."""
    with _private(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for key, result in patients:
            writer.writerows(rows_of(key, result))


def merge_lists(paths: Sequence[Path], out: Path) -> int:
    """Merge the shards' lists (each sorted) into one sorted list at ``out``; returns the number of rows."""
    readers = [_rows(p) for p in paths]
    count = 0
    with _private(out) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for row in heapq.merge(*readers, key=_order):
            writer.writerow(row)
            count += 1
    return count


def is_list(path: Path) -> bool:
    """True when ``path`` starts with this list's header."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return tuple(next(csv.reader(handle), ())) == HEADER
    except (OSError, UnicodeDecodeError):
        return False


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        if tuple(next(reader, ())) != HEADER:
            raise IdsError(f"{path}: not a replay --with-ids list (its header differs)")
        previous: list[str] | None = None
        for row in reader:
            if len(row) != len(HEADER):
                raise IdsError(f"{path} line {reader.line_num}: {len(row)} columns, expected {len(HEADER)}")
            if previous is not None and _order(row) < _order(previous):
                raise IdsError(f"{path} line {reader.line_num}: rows out of order (not written by replay)")
            previous = row
            yield row


def _private(path: Path) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was there before, with wider permissions
    return os.fdopen(fd, "w", newline="", encoding="utf-8")
