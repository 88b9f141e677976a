"""FHIR date strings to UTC datetimes, and the sort key of readings (the same instant, cheaper)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.record.dates import effective_time, effective_timestamp, parse_fhir_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-05", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("٢٠٢٤-٠٥-٠١", datetime(2024, 5, 1, tzinfo=UTC)),  # digits Python reads, not ISO ones
        ("2024-05-01T10:20:30Z", datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-05-01T10:20:30+02:00", datetime(2024, 5, 1, 8, 20, 30, tzinfo=UTC)),
        ("2024-05-01T10:20:30", datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)),  # no offset: read as UTC
        ("2024-02-30", None),
        ("2024-13", None),
        ("2024-5-1", None),
        ("yesterday", None),
        ("", None),
        (20240501, None),
        ("0001-01-01T00:30:00+01:00", None),  # out of range once in UTC
        ("9999-12-31T23:30:00-01:00", None),
    ],
)
def test_parse_fhir_datetime(text: Any, expected: datetime | None) -> None:
    parsed = parse_fhir_datetime(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is UTC


EFFECTIVE: list[dict[str, Any]] = [
    {"effectiveDateTime": "2026-11-20T09:00:00Z"},
    {"effectiveDateTime": "2026-11-20T09:00:00.123456-05:00"},
    {"effectiveDateTime": "2026-11-20T09:00:00"},
    {"effectiveDateTime": "2026-11-20"},
    {"effectiveDateTime": "2026-11"},
    {"effectiveDateTime": "0001-01-01T00:30:00+01:00", "issued": "2026-01-01T00:00:00Z"},
    {"effectiveDateTime": "0001-01-01T00:30:00-01:00"},
    {"effectiveDateTime": "9999-12-31T23:30:00+01:00"},
    {"effectiveDateTime": "not a date", "effectiveInstant": "2026-11-20T09:00:00.5+01:00"},
    {"effectiveDateTime": 5, "effectivePeriod": {"start": "2026-11-01"}},
    {"effectivePeriod": {"end": "2026-11-02T10:00:00+10:00"}},
    {"issued": "2026-11-03T10:00:00Z"},
    {"effectiveDateTime": ["2026-11-20"]},
    {},
]


@pytest.mark.parametrize("resource", EFFECTIVE)
def test_effective_timestamp_is_the_timestamp_of_effective_time(resource: dict[str, Any]) -> None:
    when = effective_time(resource)
    assert effective_timestamp(resource) == (None if when is None else when.timestamp())
