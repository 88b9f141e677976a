"""FHIR date/dateTime/instant strings to timezone-aware UTC datetimes (record/model.py convention)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def parse_fhir_datetime(value: object) -> datetime | None:
    """``2024``, ``2024-05``, ``2024-05-01`` (midnight UTC) or a full dateTime with offset; None if unusable.

    A dateTime without an offset (not valid FHIR, but sent) is read as UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # also YYYY-MM-DD, as the pattern below reads it, 5x cheaper
    except ValueError:
        m = _PARTIAL.match(value) if len(value) <= 10 else None  # a partial date is at most YYYY-MM-DD
        if m is None:
            return None
        try:
            return datetime(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1), tzinfo=UTC)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # an offset moving year 1 or 9999 out of range
        return None


def period_bounds(period: object) -> tuple[datetime | None, datetime | None]:
    """(start, end) of a FHIR Period, each None when absent or unusable."""
    if not isinstance(period, Mapping):
        return None, None
    return parse_fhir_datetime(period.get("start")), parse_fhir_datetime(period.get("end"))


def effective_time(resource: Mapping[str, Any]) -> datetime | None:
    """When an Observation or MedicationAdministration happened: effective[x], else ``issued``."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        when = parse_fhir_datetime(resource.get(key))
        if when is not None:
            return when
    start, end = period_bounds(resource.get("effectivePeriod"))
    return start or end or parse_fhir_datetime(resource.get("issued"))


def effective_timestamp(resource: Mapping[str, Any]) -> float | None:
    """``effective_time(resource)`` as a POSIX timestamp: the sort key of thousands of vital-sign readings.

    The usual full ``effectiveDateTime`` is read without building the UTC datetime (same instant, same
    timestamp); anything else, including the years where an offset could leave the datetime range, goes
    through ``effective_time``.
    """
    value = resource.get("effectiveDateTime")
    if type(value) is str and len(value) > 10:
        try:
            parsed: datetime | None = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and 1 < parsed.year < 9999:
            return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()
    when = effective_time(resource)
    return None if when is None else when.timestamp()
