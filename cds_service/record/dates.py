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
    m = _PARTIAL.match(value) if len(value) <= 10 else None  # a partial date is at most YYYY-MM-DD
    try:
        if m:
            year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
            return datetime(year, month, day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


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
