"""UCUM reading of order units: case-sensitive codes, lenient non-UCUM spellings with a note, no guessing."""

from __future__ import annotations

import pytest

from cds_service.order.units import DOSE_UNITS, TIME_UNITS, Dimension, fmt, quantity_value, read_time_code, read_unit

UCUM = "http://unitsofmeasure.org"


@pytest.mark.parametrize(
    ("code", "dimension", "factor"),
    [("mg", Dimension.MASS, 1), ("ug", Dimension.MASS, 0.001), ("g", Dimension.MASS, 1000),
     ("mg/kg", Dimension.MASS_PER_WEIGHT, 1), ("ug/kg", Dimension.MASS_PER_WEIGHT, 0.001),
     ("mg/h", Dimension.MASS_RATE, 1 / 60), ("mg/min", Dimension.MASS_RATE, 1),
     ("mg/kg/h", Dimension.MASS_PER_WEIGHT_RATE, 1 / 60), ("ug/kg/min", Dimension.MASS_PER_WEIGHT_RATE, 0.001),
     ("mL", Dimension.VOLUME, 1), ("mL/h", Dimension.VOLUME_RATE, 1 / 60)],
)
def test_ucum_codes(code, dimension, factor):  # type: ignore[no-untyped-def]
    reading = read_unit({"system": UCUM, "code": code}, DOSE_UNITS, "dose")
    assert reading.unit is not None and reading.note is None
    assert reading.unit.dimension is dimension and reading.unit.factor == pytest.approx(factor)


@pytest.mark.parametrize(("code", "canonical"), [("mcg", "ug"), ("mcg/kg/min", "ug/kg/min"), ("ml", "mL"),
                                                 ("mg/hr", "mg/h")])
def test_lenient_spellings_carry_a_note(code, canonical):  # type: ignore[no-untyped-def]
    reading = read_unit({"system": UCUM, "code": code}, DOSE_UNITS, "dose")
    assert reading.unit is not None and reading.unit.code == canonical
    assert reading.note == f"dose unit '{code}' is not UCUM; read as '{canonical}'"


@pytest.mark.parametrize("code", ["ML", "MG", "Mg", "mg/lb", "tab", "[iU]"])
def test_codes_are_case_sensitive_and_unknown_units_refused(code):  # type: ignore[no-untyped-def]
    assert read_unit({"system": UCUM, "code": code}, DOSE_UNITS, "dose").unit is None


def test_unit_text_without_a_code_is_case_insensitive():  # type: ignore[no-untyped-def]
    reading = read_unit({"unit": "MG"}, DOSE_UNITS, "dose")
    assert reading.unit is not None and reading.unit.code == "mg" and reading.note is None


def test_non_ucum_system_falls_back_to_unit_text():  # type: ignore[no-untyped-def]
    reading = read_unit({"system": "urn:local", "code": "X1", "unit": "mg"}, DOSE_UNITS, "dose")
    assert reading.unit is not None and reading.unit.code == "mg"
    assert read_unit({"system": "urn:local", "code": "X1"}, DOSE_UNITS, "dose").unit is None


@pytest.mark.parametrize(("code", "minutes"), [("s", 1 / 60), ("min", 1), ("h", 60), ("d", 1440), ("wk", 10080),
                                               ("mo", 43830), ("a", 525960)])
def test_time_units(code, minutes):  # type: ignore[no-untyped-def]
    reading = read_time_code(code, "duration")
    assert reading.unit is not None and reading.unit.factor == pytest.approx(minutes)
    assert TIME_UNITS[code].factor == pytest.approx(minutes)


def test_time_leniency_and_refusal():  # type: ignore[no-untyped-def]
    assert read_time_code("hr", "duration").note is not None
    assert read_time_code("H", "duration").unit is None
    assert read_time_code(None, "duration").unit is None


@pytest.mark.parametrize(("value", "expected"), [(35, 35.0), (0.5, 0.5), (True, None), ("35", None),
                                                 (float("nan"), None), (float("inf"), None), (None, None)])
def test_quantity_value(value, expected):  # type: ignore[no-untyped-def]
    assert quantity_value({"value": value}) == expected


@pytest.mark.parametrize(("value", "text"), [(35.0, "35"), (0.526, "0.526"), (0.52631, "0.526"), (1 / 3, "0.333"),
                                             (0.0001, "0")])
def test_fmt(value, text):  # type: ignore[no-untyped-def]
    assert fmt(value) == text
