"""§8a: one pre-dose-data-missing card for everything the checks need and the record lacks, one line and one
suggestion per item; the retired "undocumented" cards are never given."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cds_service.cards.render import render_cards
from cds_service.record import kinds
from cds_service.record.model import BloodPressure
from cds_service.rules.engine import evaluate
from cds_service.rules.findings import CreateAssessment, Indicator, MissingItem
from cds_service.rules.pre_dose import pre_dose_finding, unique
from tests.builders.orders import esk_order, iv_order
from tests.builders.records import condition, phq9, record, weight
from tests.clock import NOW, days_ago


def _bp(days: float, s: float = 122, d: float = 78) -> BloodPressure:
    return BloodPressure(f"bp-{days:g}", days_ago(days), s, d)


def _data_cards(ev: Any) -> list[Any]:
    return [f for f in ev.findings if f.topic == "pre-dose-data-missing"]


def test_nothing_missing_no_card() -> None:
    assert pre_dose_finding(()) is None


def test_one_line_and_one_suggestion_per_item_first_rule_wins() -> None:
    items = (
        MissingItem("depression-score", "No PHQ-9 in 30 days", "phq9", what="a depression score"),
        MissingItem("blood-pressure", "No blood pressure in 30 days", "vital-signs", what="blood pressure"),
        MissingItem("depression-score", "No score since the course began", "phq9"),
        MissingItem("order-dose", "A readable dose", None, what="a readable dose"),
    )
    assert [i.line for i in unique(items)] == ["No PHQ-9 in 30 days", "No blood pressure in 30 days", "A readable dose"]
    finding = pre_dose_finding(items)
    assert finding is not None and (finding.indicator, finding.variant) == (Indicator.WARNING, "several")
    assert finding.detail == ("- No PHQ-9 in 30 days", "- No blood pressure in 30 days", "- A readable dose")
    assert finding.suggestions == (CreateAssessment("phq9"), CreateAssessment("vital-signs"))
    assert finding.facts["items"] == "a depression score, blood pressure and a readable dose"


def test_the_engine_gathers_severity_bp_and_weight_into_one_card(kb) -> None:  # type: ignore[no-untyped-def]
    rec = record(scores=[phq9(19, 45)])  # no BP, no weight, the score is 45 days old
    ev = evaluate(rec, iv_order(35), kb, NOW)
    (card,) = _data_cards(ev)
    assert [m.key for m in ev.missing] == ["depression-score", "blood-pressure", "body-weight"]
    assert card.facts["items"] == "a depression score, blood pressure and body weight"
    retired = {"depression-severity-undocumented", "blood-pressure-undocumented", "weight-undocumented"}
    assert not {f.topic for f in ev.findings} & retired
    rendered = render_cards(ev, {"resourceType": "MedicationRequest", "id": "ket-1"}, "MedicationRequest/ket-1", kb,
                            base_url="https://cds.example.org", patient_id="p1")  # fmt: skip
    data = next(c for c in rendered if c["source"]["topic"]["code"] == "pre-dose-data-missing")
    assert [s["label"] for s in data["suggestions"]] == ["Record a PHQ-9", "Record vital signs", "Record body weight"]
    assert data["selectionBehavior"] == "any"  # independent orders: the clinician may accept all three
    assert data["summary"] == "Record before dosing: a depression score, blood pressure and body weight"
    assert "**Needs attention**" in rendered[0]["detail"]


def test_esketamine_needs_no_weight(kb) -> None:  # type: ignore[no-untyped-def]
    ev = evaluate(record(scores=[phq9(19, 3)]), esk_order(56), kb, NOW)
    (card,) = _data_cards(ev)
    assert [m.key for m in ev.missing] == ["blood-pressure"] and card.variant == "default"


def test_no_depression_score_needed_for_chronic_pain(kb) -> None:  # type: ignore[no-untyped-def]
    rec = record(depressed=False, conditions=[condition("c-crps", "chronic-pain-crps", "G90.50")], weights=[weight(70)])
    ev = evaluate(rec, iv_order(35), kb, NOW)
    assert [m.key for m in ev.missing] == ["blood-pressure"]


@pytest.mark.parametrize(("bp_age", "weight_age", "expected"), [
    (30, 90, []), (30.01, 90, ["blood-pressure"]), (30, 90.01, ["body-weight"]),
])
def test_windows_30_days_for_bp_and_90_for_weight(kb, bp_age, weight_age, expected) -> None:  # type: ignore[no-untyped-def]
    rec = record(scores=[phq9(19, 3)], weights=[weight(70, age_days=weight_age)])
    rec = replace(rec, blood_pressures=(_bp(bp_age),))
    ev = evaluate(rec, iv_order(35), kb, NOW)
    assert [m.key for m in ev.missing] == expected
    assert bool(_data_cards(ev)) is bool(expected)


def test_unobtainable_data_is_a_line_of_the_same_card(kb) -> None:  # type: ignore[no-untyped-def]
    rec = record(available=kinds.ALL - {kinds.BLOOD_PRESSURE, kinds.SCORES}, weights=[weight(70)])
    ev = evaluate(rec, iv_order(35), kb, NOW)
    (card,) = _data_cards(ev)
    assert all("could not be read completely" in line for line in card.detail)
