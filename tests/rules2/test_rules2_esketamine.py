"""Section 5: intranasal esketamine dose bands (with the age-65 exception) and the REMS card."""

from __future__ import annotations

from datetime import date

import pytest
from rules2_support import by_topic, esk_order, record, run, topics

from cds_service.order.model import DoseUnit, OrderStage, Route
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator

AGE_64 = date(1962, 11, 24)  # 64 on 2026-11-23 (birthday tomorrow)
AGE_65 = date(1961, 11, 23)  # 65 today


def dose_findings(mg: float, kb, birth: date | None = AGE_64):  # type: ignore[no-untyped-def]
    findings, checks = run(record(birth=birth), esk_order(mg), kb)
    return [f for f in findings if f.topic != "esketamine-rems"], checks


@pytest.mark.parametrize(
    ("mg", "topic", "indicator"),
    [
        (27, "esketamine-dose-low", Indicator.WARNING),
        (28, "esketamine-dose-low", Indicator.WARNING),
        (55, "esketamine-dose-low", Indicator.WARNING),
        (56, None, None),
        (84, None, None),
        (85, "esketamine-dose-high", Indicator.CRITICAL),
    ],
)
def test_bands_under_65(kb, mg, topic, indicator):  # type: ignore[no-untyped-def]
    findings, _ = dose_findings(mg, kb)
    assert [(f.topic, f.indicator) for f in findings] == ([(topic, indicator)] if topic else [])


@pytest.mark.parametrize(
    ("birth", "mg", "variant", "indicator"),
    [
        (AGE_64, 28, "default", Indicator.WARNING),
        (AGE_65, 28, "elderly-start", Indicator.INFO),
        (AGE_65, 27, "default", Indicator.WARNING),  # not the labelled start
        (AGE_65, 42, "default", Indicator.WARNING),
        (None, 28, "default", Indicator.WARNING),
    ],
)
def test_age_65_exception(kb, birth, mg, variant, indicator):  # type: ignore[no-untyped-def]
    findings, _ = dose_findings(mg, kb, birth)
    f = by_topic(findings, "esketamine-dose-low")
    assert (f.variant, f.indicator) == (variant, indicator)
    if birth is None:
        assert any("Age not recorded" in d for d in f.detail)


def test_high_is_critical_with_delete(kb):  # type: ignore[no-untyped-def]
    findings, checks = dose_findings(112, kb)
    f = by_topic(findings, "esketamine-dose-high")
    assert DeleteOrder() in f.suggestions
    assert next(c for c in checks if c.criterion == "Dose").status is CheckStatus.NOT_MET


def test_rems_always_even_on_select_without_dose(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), esk_order(None, stage=OrderStage.SELECT), kb)
    assert topics(findings) == {"esketamine-rems"}
    assert by_topic(findings, "esketamine-rems").indicator is Indicator.INFO


def test_mg_per_kg_esketamine_is_not_guessed(kb):  # type: ignore[no-untyped-def]
    findings, checks = run(record(), esk_order(0.8, unit=DoseUnit.MG_PER_KG), kb)
    assert topics(findings) == {"esketamine-rems"}
    dose = next(c for c in checks if c.criterion == "Dose")
    assert dose.status is CheckStatus.UNDOCUMENTED and "mg per session" in dose.note


def test_missing_dose_on_sign_is_on_the_summary_line(kb):  # type: ignore[no-untyped-def]
    _, checks = run(record(), esk_order(None), kb)
    dose = next(c for c in checks if c.criterion == "Dose")
    assert dose.status is CheckStatus.UNDOCUMENTED and dose.note == "no dose on the order"


@pytest.mark.parametrize(
    ("dose", "unit", "problem"),
    [
        (None, DoseUnit.MG, "no dose on the order"),
        (0.8, DoseUnit.MG_PER_KG, "'0.8 mg/kg' is weight-based"),
    ],
)
def test_unreadable_dose_on_sign_is_a_warning_card(kb, dose, unit, problem):  # type: ignore[no-untyped-def]
    """§9: missing data never passes silently; the REMS card (always present) carries it as a warning."""
    findings, _ = run(record(), esk_order(dose, unit=unit), kb)
    (rems,) = findings
    assert (rems.topic, rems.variant, rems.indicator) == ("esketamine-rems", "dose-unreadable", Indicator.WARNING)
    assert rems.facts["problem"].startswith(problem)
    text = kb.topics["esketamine-rems"].variants["dose-unreadable"]
    assert "not done" in text.rationale and "2 hours" in text.rationale


@pytest.mark.parametrize(
    ("dose", "stage", "route"),
    [
        (56, OrderStage.SIGN, Route.INTRANASAL),  # readable: plain REMS reminder
        (None, OrderStage.SELECT, Route.INTRANASAL),  # order not complete yet
        (None, OrderStage.SIGN, Route.INTRAVENOUS),  # intranasal bands do not apply to this route
    ],
)
def test_rems_stays_info_otherwise(kb, dose, stage, route):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), esk_order(dose, stage=stage, route=route), kb)
    rems = by_topic(findings, "esketamine-rems")
    assert (rems.variant, rems.indicator) == ("default", Indicator.INFO)


def test_esketamine_by_another_route_gets_no_intranasal_bands(kb):  # type: ignore[no-untyped-def]
    findings, checks = run(record(), esk_order(112, route=Route.INTRAVENOUS), kb)
    assert topics(findings) == {"esketamine-rems"}
    assert next(c for c in checks if c.criterion == "Dose").status is CheckStatus.NOT_APPLICABLE


def test_no_iv_rules_for_esketamine(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), esk_order(56), kb)
    assert "weight-undocumented" not in topics(findings)
