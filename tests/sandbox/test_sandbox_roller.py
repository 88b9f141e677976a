"""The date roller: precision and zones kept, periods and birth dates shifted, idempotent, strict about anchors."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest
from tests.clock import NOW

ANCHOR = date(2026, 1, 1)


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("2025-12-20", 10, "2025-12-30"),
        ("2025-12-20T09:30:00-05:00", 10, "2025-12-30T09:30:00-05:00"),
        ("2025-12-20T09:30:00Z", -20, "2025-11-30T09:30:00Z"),
        ("2025-12-20T09:30:00.123+02:00", 326, "2026-11-11T09:30:00.123+02:00"),
        ("2025-12-20T09:30", 1, "2025-12-21T09:30"),
        ("2024-02-28", 1, "2024-02-29"),  # leap day
        ("1980", 400, "1981"),  # year precision stays a year
        ("1980-07", 40, "1980-08"),  # year-month stays year-month
        ("not a date", 5, "not a date"),
    ],
)
def test_shift_value_keeps_precision_and_zone(value: str, days: int, expected: str) -> None:
    assert roller.shift_value(value, days) == expected


def _age(born: date, on: date) -> tuple[int, int]:
    """Whole years, and days since the last birthday."""
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return years, (on - roller._anniversary(born, born.year + years)).days


@pytest.mark.parametrize("target", [date(2026, 11, 23), date(2026, 12, 7), date(2028, 2, 28), date(2028, 3, 1),
                                    date(2031, 6, 30), date(2044, 1, 1)])
@pytest.mark.parametrize("born", ["2008-01-02", "2008-01-03", "1961-03-01", "1990-12-31", "1984-03-01"])
def test_a_rolled_birth_date_keeps_the_age_in_years_and_days(target: date, born: str) -> None:
    rolled = date.fromisoformat(roller.shift_birth_date(born, ANCHOR, target))
    years, days = _age(date.fromisoformat(born), ANCHOR)
    if (target - timedelta(days=days)).strftime("%m-%d") == "02-29":
        # the birthday would fall on 29 February: born on 28 February, one day more since it, same years
        assert _age(rolled, target) == (years, days + 1)
    else:
        assert _age(rolled, target) == (years, days)


def test_the_18th_birthday_fixture_pair_stays_either_side_of_18_on_any_day() -> None:
    for target in (date(2026, 11, 23), date(2027, 2, 28), date(2028, 2, 29), date(2028, 3, 1), date(2030, 7, 4)):
        adult = date.fromisoformat(roller.shift_birth_date("2008-01-01", ANCHOR, target))
        minor = date.fromisoformat(roller.shift_birth_date("2008-01-02", ANCHOR, target))
        assert (_age(adult, target)[0], _age(minor, target)) == (18, (17, 364)), target


def test_partial_birth_dates_shift_by_days() -> None:
    assert roller.shift_birth_date("1980-07", ANCHOR, date(2026, 2, 10)) == "1980-08"
    assert roller.shift_birth_date("1980", ANCHOR, date(2027, 1, 31)) == "1981"


def test_shift_touches_dates_only() -> None:
    doc = {
        "resourceType": "Observation",
        "effectivePeriod": {"start": "2025-12-01", "end": "2025-12-02T10:00:00Z"},
        "issued": "2025-12-03T00:00:00Z",
        "code": {"coding": [{"code": "2025"}]},  # a code that looks like a year is not a date
        "medicationCodeableConcept": {"coding": [{"code": "6130"}]},
        "valueString": "2025-12-01",
        "component": [{"valueDateTime": "2025-12-04"}],
    }
    out = roller.shift(doc, 31)
    assert out["effectivePeriod"] == {"start": "2026-01-01", "end": "2026-01-02T10:00:00Z"}
    assert out["issued"] == "2026-01-03T00:00:00Z"
    assert out["code"]["coding"][0]["code"] == "2025"
    assert out["medicationCodeableConcept"]["coding"][0]["code"] == "6130"
    assert out["valueString"] == "2025-12-01"
    assert out["component"][0]["valueDateTime"] == "2026-01-04"
    assert doc["issued"] == "2025-12-03T00:00:00Z", "the input is not modified"


def _bundle() -> dict:
    return roller.mark_anchor(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": {"resourceType": "Patient", "birthDate": "1961-07-01"}},
                {"resource": {"resourceType": "Observation", "effectiveDateTime": "2025-12-25T09:30:00-05:00"}},
                {"resource": {"resourceType": "MedicationStatement", "effectivePeriod": {"start": "2025-06-01"}}},
            ],
        },
        ANCHOR,
    )


def test_roll_moves_anchor_to_target_and_keeps_ages() -> None:
    rolled = roller.roll(_bundle(), NOW)
    patient, obs, stmt = (e["resource"] for e in rolled["entry"])
    assert obs["effectiveDateTime"] == "2026-11-16T09:30:00-05:00"  # 7 days before NOW, as 7 days before anchor
    assert stmt["effectivePeriod"]["start"] == "2026-04-23"  # 214 days before, both times
    born = date.fromisoformat(patient["birthDate"])
    age = NOW.year - born.year - ((NOW.month, NOW.day) < (born.month, born.day))
    assert age == 64  # 64 on the anchor, 64 on the evaluation date
    assert roller.anchor_of(rolled) == NOW.date()


def test_roll_is_idempotent_for_the_same_date() -> None:
    once = roller.roll(_bundle(), NOW)
    assert roller.roll(once, NOW) == once
    assert roller.roll(roller.roll(_bundle(), date(2027, 3, 1)), NOW) == once


def test_roll_request_records_anchor_in_extension() -> None:
    order = {"resourceType": "MedicationRequest", "authoredOn": "2026-01-01"}
    draft = {"resourceType": "Bundle", "entry": [{"resource": order}]}
    request = roller.mark_anchor({"hook": "order-sign", "context": {"draftOrders": draft}}, ANCHOR)
    rolled = roller.roll(request, "2026-11-23")
    assert rolled["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] == "2026-11-23"
    assert rolled["extension"][roller.ANCHOR_EXTENSION_KEY] == "2026-11-23"
    assert "meta" not in rolled


def test_roll_without_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="anchor"):
        roller.roll({"resourceType": "Bundle", "entry": []}, NOW)
    explicit = roller.roll({"resourceType": "Bundle", "timestamp": "2026-01-01T00:00:00Z"}, NOW, anchor=ANCHOR)
    assert explicit["timestamp"] == "2026-11-23T00:00:00Z"


def test_every_fixture_rolls_to_any_date_and_back() -> None:
    manifest = load_manifest()
    for entry in manifest.entries:
        bundle = manifest.bundle(entry)
        assert roller.anchor_of(bundle) == manifest.anchor, entry.name
        assert roller.roll(roller.roll(bundle, NOW), manifest.anchor) == bundle, entry.name
