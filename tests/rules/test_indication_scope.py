"""Scope, indication, the suicidal-ideation indication, routes and the anaesthetic-looking order (clinical-rules.md
v2 §0-§1), and the antidepressant card (§1). Fixed clock; boundary pairs (29 vs 31 days, 14.9 vs 15 minutes,
0.99 vs 1.0 mg/kg)."""

from __future__ import annotations

import dataclasses

import pytest

from cds_service.order.model import Dose, DoseUnit, Drug, Route
from cds_service.record.model import BodyWeight
from cds_service.rules import engine
from cds_service.rules.findings import CheckStatus, Indicator
from cds_service.rules.indication import (
    IndicationKind,
    anaesthetic_dose_without_reason,
    antidepressant_rule,
    determine_indication,
    indication_rule,
    out_of_scope,
    route_note,
    suicidal_ideation,
)
from cds_service.rules.indication_evidence import suicidal_ideation_evidence
from tests.builders.orders import order
from tests.builders.records import ICD, cond, period, record
from tests.clock import NOW, days_ago

SCT = "http://snomed.info/sct"
ESKETAMINE = order(Drug.ESKETAMINE, Route.INTRANASAL)


def si(age: float | None, status: str = "active"):  # type: ignore[no-untyped-def]
    c = cond(f"si-{age}", "suicidal-ideation", status=status, label="Suicidal ideations")
    when = days_ago(age) if age is not None else None
    return dataclasses.replace(c, onset=when, recorded=when)


# ---------------------------------------------------------------- scope


@pytest.mark.parametrize(
    ("text", "codes", "outside"),
    [
        ("Procedural sedation for fracture reduction", (), True),
        ("Induction of anaesthesia", (), True),
        ("Acute pain after surgery", (), True),
        ("Status epilepticus", (), True),
        ("Agitation in the ED", (), True),
        (None, ((ICD, "G89.11"),), True),
        ("Treatment-resistant depression", (), False),
        ("Sedation; major depressive disorder", (), False),
        ("CRPS, right arm", (), False),
        ("Dx 4471", (), False),
        (None, (), False),
    ],
)
def test_orders_outside_psychiatry_and_chronic_pain_get_no_cards(kb, text, codes, outside):
    the_order = order(reason_text=text, reasons=codes)
    assert out_of_scope(the_order, kb) is outside
    evaluation = engine.evaluate(record(), the_order, kb, NOW)
    if outside:
        assert evaluation.findings == () and evaluation.checks == ()
    else:
        assert evaluation.findings[0].topic == "eligibility-summary"


# ---------------------------------------------------------------- suicidal ideation


@pytest.mark.parametrize(("age", "current"), [(29, True), (30, True), (31, False), (None, False)])
def test_suicidal_ideation_entry_counts_for_30_days(kb, age, current):
    found = suicidal_ideation(record(conditions=[si(age)]), order(), kb, NOW)
    assert found.current is current
    out = suicidal_ideation_evidence(record(conditions=[si(age)]), order(), kb, NOW)
    assert [f.topic for f in out.findings] == (["suicidal-ideation"] if current else [])
    line = [
        c
        for c in indication_rule(record(conditions=[si(age)]), order(), kb, NOW).checks
        if c.criterion == "Suicidal ideation"
    ]
    assert bool(line) is not current


def test_suicidal_ideation_from_the_order_reason_whatever_the_problem_list(kb):
    by_code = order(reasons=[(ICD, "R45.851")])
    by_name = order(reason_text="Acute suicidal ideation")
    for the_order in (by_code, by_name, order(reasons=[(SCT, "82313006")])):
        assert suicidal_ideation(record(), the_order, kb, NOW).current
        found = determine_indication(record(), the_order, kb, NOW)
        assert found.kind is IndicationKind.DEPRESSION and found.suicidal_ideation
    alone = determine_indication(record(depressed=False), by_code, kb, NOW)
    assert alone.kind is IndicationKind.SUICIDAL_IDEATION
    assert indication_rule(record(depressed=False), by_code, kb, NOW).findings == ()
    assert not suicidal_ideation(record(), order(reason_text="denies suicidal ideation"), kb, NOW).current


def test_recent_ideation_without_depression_is_the_indication(kb):
    found = determine_indication(record(depressed=False, conditions=[si(3)]), order(), kb, NOW)
    assert found.kind is IndicationKind.SUICIDAL_IDEATION
    old = determine_indication(record(depressed=False, conditions=[si(90)]), order(), kb, NOW)
    assert old.kind is IndicationKind.NONE


# ---------------------------------------------------------------- antidepressant card


def test_antidepressant_card_iv_warning_esketamine_info_unless_suicidal_ideation(kb):
    rec = record()
    (iv,) = antidepressant_rule(rec, order(), kb, NOW).findings
    assert (iv.indicator, iv.variant) == (Indicator.WARNING, "default")
    (esk,) = antidepressant_rule(rec, ESKETAMINE, kb, NOW).findings
    assert (esk.indicator, esk.variant) == (Indicator.INFO, "esketamine")
    with_si = record(conditions=[si(5)])
    (esk_si,) = antidepressant_rule(with_si, ESKETAMINE, kb, NOW).findings
    assert (esk_si.indicator, esk_si.variant) == (Indicator.WARNING, "esketamine-suicidal-ideation")
    old_si = record(conditions=[si(45)])
    assert antidepressant_rule(old_si, ESKETAMINE, kb, NOW).findings[0].indicator is Indicator.INFO


def test_bipolar_depression_never_gets_the_antidepressant_card(kb):
    rec = record(conditions=[cond("b", "bipolar", status="remission")])
    out = antidepressant_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.NOT_APPLICABLE and "lithium or valproate" in out.checks[0].note


def test_antidepressant_met_when_taking_one(kb):
    out = antidepressant_rule(record(exposures=[period("sertraline", days_ago(60))]), ESKETAMINE, kb, NOW)
    assert out.findings == () and out.checks[0].status is CheckStatus.MET


# ---------------------------------------------------------------- routes


def test_route_statements(kb):
    unstated = dataclasses.replace(order(), route=Route.UNSPECIFIED)
    assert route_note(unstated) == "route not stated: checked as IV"
    checks = indication_rule(record(), unstated, kb, NOW).checks
    assert any(c.criterion == "Route" and c.note == "route not stated: checked as IV" for c in checks)
    other = dataclasses.replace(order(), route=Route.OTHER)
    assert "IV ketamine and intranasal esketamine only" in (route_note(other) or "")
    assert route_note(order()) is None and route_note(ESKETAMINE) is None


# ---------------------------------------------------------------- anaesthetic-looking order without a reason


def bolus(mg: float, minutes: float | None, **kw: object):  # type: ignore[no-untyped-def]
    return dataclasses.replace(order(**kw), dose=Dose(mg, DoseUnit.MG, f"{mg:g} mg"), duration_minutes=minutes)


WEIGHED = record(weights=(BodyWeight("w", days_ago(3), 80.0, "80 kg"),))


@pytest.mark.parametrize(
    ("mg", "minutes", "looks"),
    [(80, 5, True), (80, 14.9, True), (80, 15, False), (79, 5, False), (80, None, False)],
)
def test_anaesthetic_looking_dose_boundaries(kb, mg, minutes, looks):
    found = anaesthetic_dose_without_reason(WEIGHED, bolus(mg, minutes), kb, NOW)
    assert (found is not None) is looks
    if looks:
        assert found == f"80 mg (1 mg/kg) over {minutes:g} min"


def test_anaesthetic_looking_order_gets_one_indication_warning_naming_the_dose(kb):
    out = indication_rule(WEIGHED, bolus(80, 5), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator, f.variant) == ("indication-undocumented", Indicator.WARNING, "anaesthetic-dose")
    assert f.facts["dose"] == "80 mg (1 mg/kg) over 5 min"
    assert f.suggestions == ()


def test_a_reason_or_mg_per_kg_dose(kb):
    assert anaesthetic_dose_without_reason(WEIGHED, bolus(80, 5, reason_text="MDD"), kb, NOW) is None
    per_kg = dataclasses.replace(order(), dose=Dose(1.5, DoseUnit.MG_PER_KG, "1.5 mg/kg"), duration_minutes=2)
    assert anaesthetic_dose_without_reason(record(), per_kg, kb, NOW) == "1.5 mg/kg over 2 min"
    assert anaesthetic_dose_without_reason(record(), bolus(80, 5), kb, NOW) is None  # no weight: cannot tell
