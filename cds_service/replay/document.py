"""The replay report as data: the JSON document every output format is rendered from, and read back for merge.

Every count in the document is a sum over patients (``tally.Tally``), and the ``input`` section is what
reading the export found, the same in every shard. So ``merge`` reads the shards' documents back into tallies,
adds them up and renders the sum: a merged report is exactly the report of one run over the whole export.
Derived figures (means, medians, shares) are computed here, from the sums, never stored and re-added.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from importlib import metadata
from typing import Any, Final

from cds_service.replay.index import InputStats
from cds_service.replay.tally import URGENCY, ProblemLog, Tally

REPORT: Final = "ketamine-cds replay"
FORMAT_VERSION: Final = 1


class DocumentError(ValueError):
    """A file given to merge is not a replay report this version can read; the message says why."""


def service_version() -> str:
    try:
        return metadata.version("ketamine-cds")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return "unknown"


def build_document(
    parameters: Mapping[str, Any], kb_version: str, input_stats: InputStats, tally: Tally
) -> dict[str, Any]:
    """The report: parameters, versions, what was read, and every figure of the tally."""
    answered = sum(tally.cards_per_order.values())
    return {
        "report": REPORT,
        "format_version": FORMAT_VERSION,
        "parameters": dict(parameters),
        "knowledge_base_version": kb_version,
        "service_version": service_version(),
        "input": input_stats.to_json(),
        "patients_in_export": tally.patients_in_export,
        "patients": tally.patients,
        "patients_left_out": _sorted(tally.patients_left_out),
        "orders": tally.orders,
        "orders_refused": _sorted(tally.orders_refused),
        "cards": tally.cards,
        "cards_per_order": {
            "mean": round(tally.cards / answered, 3) if answered else None,
            "median": _quantile(tally.cards_per_order, 0.5),
            "p90": _quantile(tally.cards_per_order, 0.9),
            "max": max(tally.cards_per_order) if tally.cards_per_order else None,
            "distribution": {str(n): tally.cards_per_order[n] for n in sorted(tally.cards_per_order)},
        },
        "orders_with_indicator": {i: tally.orders_with_indicator[i] for i in _indicators(tally.orders_with_indicator)},
        "orders_by_most_urgent_card": _sorted(tally.orders_by_urgency),
        "share_of_orders_with_critical": (
            round(tally.orders_with_indicator["critical"] / answered, 4) if answered else None
        ),
        "topics": {t: {i: tally.topics[t][i] for i in _indicators(tally.topics[t])} for t in sorted(tally.topics)},
        "orders_with_topic": _sorted(tally.orders_with_topic),
        "patients_with_topic": _sorted(tally.patients_with_topic),
        "data_gaps": {
            "not_documented": _sorted(tally.not_documented),
            "not_obtained": _sorted(tally.not_obtained),
            "skipped_as_invalid": _sorted(tally.skipped_as_invalid),
        },
        "as_of": {
            "orders_with_data_left_out": tally.orders_with_data_left_out,
            "resources_left_out": tally.resources_left_out,
        },
        "notes": _sorted(tally.notes),
        "problems": tally.problems.to_json(),
        "service_log": _sorted(tally.service_log),
    }


def read_document(doc: Any, name: str) -> tuple[dict[str, Any], InputStats, Tally]:
    """(parameters, input, tally) of a report document; DocumentError naming ``name`` when it is not one."""
    if not isinstance(doc, Mapping) or doc.get("report") != REPORT:
        raise DocumentError(f"{name}: not a {REPORT} JSON report (run the shards with --format json)")
    if doc.get("format_version") != FORMAT_VERSION:
        raise DocumentError(f"{name}: report format {doc.get('format_version')!r}; this version reads {FORMAT_VERSION}")
    try:
        gaps = doc["data_gaps"]
        tally = Tally(
            patients_in_export=int(doc["patients_in_export"]),
            patients=int(doc["patients"]),
            patients_left_out=_counter(doc["patients_left_out"]),
            orders=int(doc["orders"]),
            orders_refused=_counter(doc["orders_refused"]),
            cards=int(doc["cards"]),
            cards_per_order=Counter({int(k): int(v) for k, v in doc["cards_per_order"]["distribution"].items()}),
            orders_with_indicator=_counter(doc["orders_with_indicator"]),
            orders_by_urgency=_counter(doc["orders_by_most_urgent_card"]),
            topics={str(t): _counter(by) for t, by in doc["topics"].items()},
            orders_with_topic=_counter(doc["orders_with_topic"]),
            patients_with_topic=_counter(doc["patients_with_topic"]),
            not_documented=_counter(gaps["not_documented"]),
            not_obtained=_counter(gaps["not_obtained"]),
            skipped_as_invalid=_counter(gaps["skipped_as_invalid"]),
            orders_with_data_left_out=int(doc["as_of"]["orders_with_data_left_out"]),
            resources_left_out=int(doc["as_of"]["resources_left_out"]),
            notes=_counter(doc["notes"]),
            problems=ProblemLog.from_json(doc["problems"]),
            service_log=_counter(doc["service_log"]),
        )
        return dict(doc["parameters"]), InputStats.from_json(doc["input"]), tally
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DocumentError(f"{name}: a replay report with a missing or malformed field ({exc!r})") from exc


def _counter(doc: Mapping[str, Any]) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in doc.items()})


def _sorted(counter: Counter[str]) -> dict[str, int]:
    """Largest first, then by name: the order a reader wants, and a fixed one."""
    return {k: v for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def _indicators(counter: Counter[str]) -> list[str]:
    """Indicators present, in order of urgency (any unexpected value after the known ones)."""
    known = [i for i in URGENCY if counter.get(i)]
    return known + sorted(i for i in counter if i not in URGENCY and counter[i])


def _quantile(distribution: Counter[int], q: float) -> int | None:
    """The smallest value with at least ``q`` of the orders at or below it."""
    total = sum(distribution.values())
    if not total:
        return None
    seen = 0
    for value in sorted(distribution):
        seen += distribution[value]
        if seen >= q * total:
            return value
    return max(distribution)  # pragma: no cover - the loop always returns
