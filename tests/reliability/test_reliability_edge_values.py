"""Numbers and dates at the edges, wherever the service reads one: never a 500.

A 400-digit integer (float() overflows), 1e-320 (a unit factor rounds it to 0, dividing by it overflows),
1e300 (products become infinite), 0001-01-01 and 9999-12-31 ("no date" placeholders; a look-back window or a
supply added to them leaves the calendar) and offsets that push an instant out of years 1-9999 are sent in
every kind of element that holds one: the draft order's dose, rate and timing, the MedicationStatements',
MedicationRequests' and Observations' quantities, counts and dates, the Conditions' and the Patient's dates.
The fixtures' requests are the real data around them. The answer is cards or a 4xx naming the problem.

The readers' limits (``record.fhirdata.usable_number``, ``record.dates.usable_year``,
``record.units.MAX_DURATION_DAYS``, the rules configuration's maxima) are tested as boundary pairs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cds_service.config import Settings
from cds_service.knowledge import loader
from cds_service.knowledge.model import Knowledge
from cds_service.record.dates import parse_fhir_datetime, parse_instant
from cds_service.record.fhirdata import usable_number
from cds_service.record.units import duration_days
from cds_service.web.app import CLOCK_KEY, create_app

REQUESTS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "requests"
ANCHOR_NOON = datetime(2026, 1, 1, 12, tzinfo=UTC)  # the fixtures' dates are relative to their anchor
# Fixtures that hold, between them, every kind of element below (found by a hunt over the whole library)
FIXTURES = ("iv-rate-120mg-per-h", "alcohol-use-disorder-active", "course-nonresponse-two-infusions",
            "long-history-eight-years")
NUMBER_KEYS = frozenset({"value", "duration", "frequency", "frequencyMax", "period", "numberOfRepeatsAllowed",
                         "valueInteger"})
DATE_KEYS = frozenset({"start", "end", "effectiveDateTime", "onsetDateTime", "abatementDateTime", "recordedDate",
                       "authoredOn", "birthDate", "issued", "dateAsserted"})
NUMBERS = ("1" + "0" * 400, "1e-320", "1e300", "-1e300")
DATES = ('"0001-01-01"', '"9999-12-31"', '"0001-01-01T00:00:00+09:07"', '"9999-12-31T23:59:59-14:00"')
MARK = "__edge-value__"


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    else:
        yield path, node


def _shape(path: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("[]" if isinstance(p, int) else p for p in path)


def _cases() -> list[Any]:
    """One case per fixture, kind of element (its path without indices) and edge value."""
    cases = []
    for fixture in FIXTURES:
        body = json.loads((REQUESTS / fixture / "order-sign.json").read_text())
        seen: set[tuple[Any, ...]] = set()
        for path, value in _leaves(body):
            key = path[-1]
            if key in NUMBER_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                literals = NUMBERS
            elif key in DATE_KEYS and isinstance(value, str):
                literals = DATES
            else:
                continue
            if _shape(path) in seen:
                continue
            seen.add(_shape(path))
            where = ".".join(str(p) for p in path)
            cases += [pytest.param(fixture, path, literal, id=f"{fixture}:{where}={literal[:12]}")
                      for literal in literals]
    return cases


@pytest.fixture(scope="module")
def app() -> Flask:
    logging.disable(logging.WARNING)  # thousands of requests: their request lines are not under test here
    application = create_app(Settings(auth_enabled=False, database_url="sqlite://"), kb=loader.load_knowledge())
    application.extensions[CLOCK_KEY] = lambda: ANCHOR_NOON
    yield application
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize(("fixture", "path", "literal"), _cases())
def test_an_edge_value_anywhere_is_cards_or_a_named_4xx_never_a_500(
    app: Flask, fixture: str, path: tuple[Any, ...], literal: str
) -> None:
    body = json.loads((REQUESTS / fixture / "order-sign.json").read_text())
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = MARK
    text = json.dumps(body).replace(json.dumps(MARK), literal)  # a literal json.dumps cannot write (1e-320)
    response = app.test_client().post("/cds-services/ketamine-order-sign", data=text,
                                      content_type="application/json")
    assert response.status_code in (200, 400, 412), response.get_json()
    answer = response.get_json()
    if response.status_code == 200:
        assert answer["cards"][0]["source"]["topic"]["code"] == "eligibility-summary"
    else:
        assert answer["resourceType"] == "OperationOutcome" and answer["issue"][0]["diagnostics"]


# --- the readers' limits, as boundary pairs -----------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "read"),
    [(0, 0.0), (1e-9, 1e-9), (9.99e-10, None), (-1e-9, -1e-9), (10**9, 1e9), (10**9 + 1, None), (1e9, 1e9),
     (1.000001e9, None), (10**400, None), (-(10**400), None), (float("nan"), None), (float("inf"), None),
     (True, None), ("12", None), (None, None), (40, 40.0), (0.5, 0.5)],
)
def test_usable_number(value: object, read: float | None) -> None:
    assert usable_number(value) == read


@pytest.mark.parametrize(
    ("text", "year"),
    [("1000-01-01", 1000), ("0999-12-31", None), ("8999-12-31T23:59:59Z", 8999), ("9000-01-01", None),
     ("0001-01-01", None), ("9999-12-31", None), ("0001-01-01T00:00:00+09:07", None), ("0999", None), ("1000", 1000),
     ("9999-12-31T23:59:59-14:00", None), ("2026-11-23T12:00:00+14:00", 2026)],
)
def test_record_dates_are_usable_only_in_years_1000_to_8999(text: str, year: int | None) -> None:
    parsed = parse_fhir_datetime(text)
    assert (parsed.year if parsed else None) == year


@pytest.mark.parametrize(("value", "unit", "days"), [(36500, "d", 36500.0), (36501, "d", None), (100, "a", None),
                                                     (99, "a", 99 * 365.25), (5214, "wk", 36498.0)])
def test_durations_longer_than_a_century_are_not_read(value: float, unit: str, days: float | None) -> None:
    assert duration_days(value, unit) == days


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+09:07", "9999-12-31", "0999-12-31", "9000-01-01T00:00:00Z"])
def test_an_operator_instant_outside_the_record_years_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="outside the years 1000-8999"):
        parse_instant(text)


def test_an_operator_instant_at_the_edges_of_the_record_years_is_read() -> None:
    assert parse_instant("1000-01-01") == datetime(1000, 1, 1, 12, tzinfo=UTC)
    assert parse_instant("8999-12-31T23:59:59-02:00") == datetime(9000, 1, 1, 1, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("threshold", "value", "ok"),
    [("bp.lookback_days", 36500, True), ("bp.lookback_days", 36501, False), ("trd.min_trial_weeks", 5200, True),
     ("trd.min_trial_weeks", 5201, False), ("bp.critical_systolic", 1e9, True), ("bp.critical_systolic", 1.1e9, False),
     ("bp.lookback_days", float("inf"), False), ("bp.critical_systolic", float("nan"), False)],
)
def test_a_rules_configuration_number_no_window_could_use_is_refused_at_start(
    tmp_path: Path, threshold: str, value: float, ok: bool
) -> None:
    override = tmp_path / "rules.yaml"
    written = {float("inf"): ".inf", float("nan"): ".nan"}.get(value, repr(value)) if isinstance(value, float) \
        else str(value)
    override.write_text(f"thresholds:\n  {threshold}: {written}\n")
    if ok:
        kb: Knowledge = loader.load_knowledge(str(override))
        assert kb.number(threshold) == value
    else:
        with pytest.raises(loader.KnowledgeError, match=threshold):
            loader.load_knowledge(str(override))
