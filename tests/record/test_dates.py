"""FHIR date strings to UTC datetimes, the sort key of readings (the same instant, cheaper), and the order of
readings newest first (the same order, cheaper)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.record.dates import (
    as_utc,
    effective_time,
    effective_timestamp,
    newest_first_order,
    parse_fhir_datetime,
)
from tests.clock import NOW


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


def test_as_utc_is_replace_tzinfo() -> None:
    naive = datetime(2026, 11, 20, 9, 8, 7, 654321, fold=1)
    assert as_utc(naive) == naive.replace(tzinfo=UTC)
    assert repr(as_utc(naive)) == repr(naive.replace(tzinfo=UTC))


# ------------------------------------------------------------------------------------ newest_first_order


def _by_timestamps(resources: list[dict[str, Any]]) -> list[int]:
    """The reference order: newest first by timestamp, undated last, ties in the given order."""

    def key(i: int) -> float:
        ts = effective_timestamp(resources[i])
        return float("inf") if ts is None else -ts

    return sorted(range(len(resources)), key=key)


def _dated(*values: Any) -> list[dict[str, Any]]:
    return [{"effectiveDateTime": v} for v in values]


def test_same_calendar_date_offsets_order_by_instant_not_by_text() -> None:
    # text order says the first is newer; in UTC it is 2026-11-19T19:00 against 2026-11-20T20:00
    readings = _dated("2026-11-20T09:00:00+14:00", "2026-11-20T08:00:00-12:00")
    assert newest_first_order(readings) == [1, 0]
    assert newest_first_order(readings[::-1]) == [0, 1]


def test_one_microsecond_apart_across_offsets() -> None:
    readings = _dated("2026-11-20T09:00:00.000001+01:00", "2026-11-20T08:00:00.000002Z")
    assert newest_first_order(readings) == [1, 0]


def test_the_same_instant_in_two_offsets_is_a_tie_kept_in_the_given_order() -> None:
    readings = _dated("2026-11-20T23:30:00-12:00", "2026-11-21T11:30:00Z", "2026-11-22T01:30:00+14:00")
    assert newest_first_order(readings) == [0, 1, 2]
    assert newest_first_order(readings[::-1]) == [0, 1, 2]


def test_date_only_readings_are_midnight_utc() -> None:
    readings = _dated("2026-11-19", "2026-11-20", "2026-11-20", "2026-11-19T23:59:59")
    assert newest_first_order(readings) == [1, 2, 3, 0]


@pytest.mark.parametrize(
    "readings",
    [
        # a date-only reading among full ones (naive and aware): 2026-11-20 is midnight UTC
        _dated("2026-11-20", "2026-11-19T23:00:00-02:00", "2026-11-20T00:00:00+00:00"),
        # a partial date and a period, an instant, issued and undated ones among full dateTimes
        [
            {"effectiveDateTime": "2026-11"},
            {"effectivePeriod": {"end": "2026-11-02T10:00:00+10:00"}},
            {"effectiveDateTime": "2026-11-02T00:00:00Z"},
            {},
            {"effectiveInstant": "2026-11-02T00:00:00.5+00:00"},
            {"issued": "2026-11-02T00:00:00Z"},
            {"effectiveDateTime": 5},
            {"effectiveDateTime": "not a date", "effectiveInstant": "2026-11-03T00:00:00Z"},
        ],
        # beyond 2200 two instants a microsecond apart have the same timestamp: a tie, in the given order
        _dated("2300-01-01T00:00:00.000001Z", "2300-01-01T00:00:00.000002Z", "2026-11-20T00:00:00Z"),
        _dated("2300-01-01T00:00:00.000002Z", "2300-01-01T00:00:00.000001Z"),
        _dated("1850-01-01T00:00:00.000001Z", "1850-01-01T00:00:00.000002+00:00"),
        # an offset moving year 1 out of range: that reading is undated (or dated by issued)
        [{"effectiveDateTime": "0001-01-01T00:30:00+01:00"}, {"effectiveDateTime": "2026-11-20T00:00:00Z"}],
        _dated("9999-12-31T23:30:00-01:00", "2026-11-20T00:00:00Z"),
        _dated("2026-11-20T00:00:00Z"),
        [],
    ],
)
def test_newest_first_order_is_the_order_of_the_timestamps(readings: list[dict[str, Any]]) -> None:
    assert newest_first_order(readings) == _by_timestamps(readings)


def test_beyond_2200_ties_of_the_timestamps_keep_the_given_order() -> None:
    readings = _dated("2300-01-01T00:00:00.000001Z", "2300-01-01T00:00:00.000002Z")
    assert effective_timestamp(readings[0]) == effective_timestamp(readings[1])
    assert newest_first_order(readings) == [0, 1]


@pytest.mark.parametrize("seed", range(20))
def test_random_batches_in_the_order_of_the_timestamps(seed: int) -> None:
    rng = random.Random(seed)
    base = NOW
    moments: list[datetime] = []
    readings: list[dict[str, Any]] = []
    for _ in range(60):
        if moments and rng.random() < 0.3:  # the same instant, or one microsecond away, another offset
            when = rng.choice(moments) + timedelta(microseconds=rng.choice([0, 0, 1, -1]))
        else:
            when = base - timedelta(seconds=rng.randrange(3 * 86400), microseconds=rng.choice([0, 1, 999999]))
        moments.append(when)
        hours = rng.choice([0, 14, -12, 5])
        local = when + timedelta(hours=hours)
        offset = "Z" if hours == 0 and rng.random() < 0.5 else f"{'+' if hours >= 0 else '-'}{abs(hours):02d}:00"
        readings.append({"effectiveDateTime": local.isoformat(timespec="microseconds")[:26] + offset})
    assert newest_first_order(readings) == _by_timestamps(readings)
    if seed % 2:  # one odd reading: the timestamps order the whole batch
        readings[rng.randrange(len(readings))] = rng.choice([{}, {"effectiveDateTime": "2026-11-20"}])
        assert newest_first_order(readings) == _by_timestamps(readings)
