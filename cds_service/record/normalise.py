"""Known real-feed deviations of FHIR's letter, repaired before validation (clinical-rules.md §10).

| deviation                                        | repair                                     | where             |
|--------------------------------------------------|--------------------------------------------|-------------------|
| a dateTime with a time but no offset             | read in the configured time zone (offset   | Observation dates |
| (``2026-11-29T10:00:00``, ``2026-11-29T10:00``)  | appended, seconds added when missing)      | at intake, others |
|                                                  |                                            | at validation     |
| a single object where FHIR has a list            | wrapped in a one-element list              | at validation     |
| (``component: {...}``, ``coding: {...}``)        |                                            |                   |

Repairs are made on a copy (the request's JSON is never changed) and counted per record kind, so that the
cards can say what was read this way. What cannot be repaired this way is left to validation, which keeps
rejecting it: a resource is skipped and named, never guessed at. The repairs at validation are driven by
the validation errors themselves (the element path and the kind of error), so a well-formed resource costs
nothing extra.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

from pydantic_core import ErrorDetails

from cds_service.record.fhirdata import is_mapping
from cds_service.record.model import NORMALISED_LONE_OBJECT, NORMALISED_NO_OFFSET
from cds_service.record.partial import copied

_NAIVE_DATETIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_DATE_ERROR: Final = "value string does not match spec regex"  # fhir.resources' DateTime/Instant error
# Where an Observation keeps its date: read before validation (ordering readings, setting aside future ones).
_OBSERVATION_DATES: Final = ("effectiveDateTime", "effectiveInstant", "issued")
MAX_REPAIRS: Final = 8  # validation rounds per resource: each round repairs every error it can


def zone_label(zone: tzinfo) -> str:
    """The name a clinician reads for a zone: ``UTC``, ``Europe/Berlin``."""
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else str(zone)


class Repairs:
    """The repairs of one record build: how each is made, and how many of each per record kind."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.counts: Counter[tuple[str, str]] = Counter()  # (record kind, what) -> elements repaired
        self._no_offset = NORMALISED_NO_OFFSET.format(zone=zone_label(zone))

    def localise(self, value: object) -> str | None:
        """``value`` with the configured zone's offset when it is a dateTime with a time and no offset."""
        if type(value) is not str or len(value) < 16 or value[-1] == "Z" or not _NAIVE_DATETIME.match(value):
            return None  # ("Z": the usual offset, answered without the pattern)
        try:
            naive = datetime.fromisoformat(value)
        except ValueError:
            return None
        try:
            return naive.replace(tzinfo=self.zone).isoformat()
        except OverflowError:  # pragma: no cover - an offset at the edge of the calendar
            return None

    def observation_dates(self, resource: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
        """The Observation with its dates localised (a copy when any changed), before it is ordered or dated."""
        changed: dict[str, Any] | None = None
        for name in _OBSERVATION_DATES:
            value = resource.get(name)
            fixed = None if value is None else self.localise(value)
            if fixed is not None:
                changed = changed if changed is not None else copied(resource)
                changed[name] = fixed
                self.counts[(kind, self._no_offset)] += 1
        period = resource.get("effectivePeriod")
        if is_mapping(period):
            for name in ("start", "end"):
                fixed = self.localise(period.get(name))
                if fixed is not None:
                    changed = changed if changed is not None else copied(resource)
                    changed["effectivePeriod"] = {**changed["effectivePeriod"], name: fixed}
                    self.counts[(kind, self._no_offset)] += 1
        return resource if changed is None else changed

    def after_errors(
        self, resource: Mapping[str, Any], errors: Sequence[ErrorDetails], kind: str
    ) -> Mapping[str, Any] | None:
        """The resource with every error repaired that can be read safely; None when none can."""
        repaired: Any = resource
        done = False
        for error in errors:
            loc = tuple(error.get("loc", ()))
            if not loc:
                continue
            value = _at(repaired, loc)
            if error.get("type") == "list_type" and is_mapping(value):
                repaired = _replace(repaired, loc, [value])
                self.counts[(kind, NORMALISED_LONE_OBJECT)] += 1
                done = True
            elif _DATE_ERROR in str(error.get("msg", "")):
                fixed = self.localise(value)
                if fixed is not None:
                    repaired = _replace(repaired, loc, fixed)
                    self.counts[(kind, self._no_offset)] += 1
                    done = True
        return repaired if done else None


def _at(doc: Any, loc: tuple[Any, ...]) -> Any:
    """The value at a validation error's element path, or None when the path is not in ``doc``."""
    for step in loc:
        in_list = isinstance(step, int) and isinstance(doc, list) and -len(doc) <= step < len(doc)
        if not in_list and not (isinstance(step, str) and is_mapping(doc) and step in doc):
            return None
        doc = doc[step]
    return doc


def _replace(doc: Any, loc: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``doc`` with ``value`` at ``loc``: only the containers on the path are copied."""
    if not loc:
        return value
    step, rest = loc[0], loc[1:]
    if isinstance(doc, list):
        copy_list = list(doc)
        copy_list[step] = _replace(doc[step], rest, value)
        return copy_list
    copy_map = dict(doc)
    copy_map[step] = _replace(doc[step], rest, value)
    return copy_map
