"""The standard-dose rewrite (v2: on the finding's card, frequency too): everything else preserved, and no alert
loop once it is accepted: the rewritten order gives no dose, infusion or frequency finding."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.order.model import DoseUnit, OrderStage
from cds_service.order.parser import parse_order
from cds_service.order.rewrite import rewrite_to_standard
from cds_service.rules.findings import RewriteDose
from tests.builders.records import record, weight
from tests.clock import NOW
from tests.rules.support import run

DEVIATIONS = {"dose-anesthetic-range", "dose-above-standard", "dose-below-range", "infusion-too-fast",
              "frequency-above-protocol"}


def apply(res: dict[str, Any], intent: RewriteDose) -> dict[str, Any]:
    return rewrite_to_standard(res, intent.dose_mg, intent.duration_minutes, intent.per_week)

UCUM = "http://unitsofmeasure.org"


def request(dose: dict[str, Any] | None, **dosage_extra: Any) -> dict[str, Any]:
    dosage: dict[str, Any] = {
        "text": "0.8 mg/kg IV over 20 minutes",
        "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]},
        "timing": {"repeat": {"duration": 20, "durationUnit": "min", "durationMax": 25,
                              "frequency": 2, "period": 1, "periodUnit": "wk"}},
        **dosage_extra,
    }
    if dose is not None:
        dosage["doseAndRate"] = [{"type": {"text": "ordered"}, "doseQuantity": dose}]
    return {
        "resourceType": "MedicationRequest",
        "id": "ket-1",
        "meta": {"versionId": "3"},
        "extension": [{"url": "urn:example:ext", "valueString": "keep me"}],
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                  "code": "6130", "display": "ketamine"}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "requester": {"reference": "Practitioner/dr"},
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "370143000"}]}],
        "note": [{"text": "keep"}],
        "dosageInstruction": [dosage, {"text": "second instruction kept"}],
    }


def bundle(res: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": res}]}


def mg(value: float, code: str = "mg") -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def test_rewrite_preserves_everything_else() -> None:
    original = request(mg(0.8, "mg/kg"))
    frozen = copy.deepcopy(original)
    out = apply(original, RewriteDose(35, 40))
    assert original == frozen  # input untouched
    dosage = out["dosageInstruction"][0]
    assert dosage["doseAndRate"][0] == {"type": {"text": "ordered"}, "doseQuantity": mg(35)}
    assert dosage["timing"]["repeat"] == {"duration": 40, "durationUnit": "min", "frequency": 2, "period": 1,
                                          "periodUnit": "wk"}
    assert dosage["text"] == "35 mg over 40 minutes"
    for key in ("id", "meta", "extension", "status", "intent", "medicationCodeableConcept", "subject", "encounter",
                "requester", "reasonCode", "note"):
        assert out[key] == original[key], key
    assert dosage["route"] == original["dosageInstruction"][0]["route"]
    assert out["dosageInstruction"][1] == original["dosageInstruction"][1]


def test_rewrite_recomputes_a_rate_and_drops_ranges() -> None:
    res = request(None)
    res["dosageInstruction"][0]["doseAndRate"] = [{"doseRange": {"low": mg(20), "high": mg(60)},
                                                   "rateQuantity": mg(3, "mg/min")}]
    dar = apply(res, RewriteDose(37, 40))["dosageInstruction"][0]["doseAndRate"][0]
    assert dar == {"doseQuantity": mg(37), "rateQuantity": mg(55.5, "mg/h")}


def test_rewrite_of_an_order_without_dosage() -> None:
    res = request(None)
    res["dosageInstruction"] = []
    out = apply(res, RewriteDose(35, 40))
    assert out["dosageInstruction"] == [{"doseAndRate": [{"doseQuantity": mg(35)}],
                                         "timing": {"repeat": {"duration": 40, "durationUnit": "min"}}}]


def test_rewrite_sets_twice_weekly_and_drops_what_contradicts_it() -> None:
    res = request(mg(35))
    res["dosageInstruction"][0]["timing"] = {
        "code": {"text": "daily"},
        "repeat": {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d",
                   "dayOfWeek": ["mon", "tue", "wed", "thu", "fri"], "timeOfDay": ["09:00:00"]},
    }
    dosage = apply(res, RewriteDose(35, 40, 2))["dosageInstruction"][0]
    assert dosage["timing"] == {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk", "timeOfDay": ["09:00:00"],
                                           "duration": 40, "durationUnit": "min"}}
    assert dosage["text"] == "35 mg over 40 minutes, 2 times a week"


def suggestion(res: dict[str, Any], rec: Any, kb: Any) -> RewriteDose | None:
    order = parse_order(res, bundle(res), kb, OrderStage.SIGN)
    findings, _ = run(rec, order, kb)
    hits = [s for f in findings for s in f.suggestions if isinstance(s, RewriteDose)]
    assert len(hits) <= 1, hits  # one suggestion, on one card
    return hits[0] if hits else None


def deviations(res: dict[str, Any], rec: Any, kb: Any) -> set[str]:
    findings, _ = run(rec, parse_order(res, bundle(res), kb, OrderStage.SIGN), kb)
    return {f.topic for f in findings if f.indicator.value != "info"} & DEVIATIONS


@pytest.mark.parametrize(
    ("dose", "rec", "timing"),
    [
        (mg(0.8, "mg/kg"), record(weights=[weight(70)]), None),
        (mg(50), record(weights=[weight(73)]), None),
        (mg(50), record(weights=[weight(lb=161)]), None),
        (mg(35), record(weights=[weight(70)]), {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}),
        (mg(80), record(weights=[weight(70)]), {"repeat": {"frequency": 5, "period": 1, "periodUnit": "wk",
                                                           "duration": 10, "durationUnit": "min"}}),
    ],
)
def test_accepting_the_suggestion_ends_the_loop(kb, dose, rec, timing):  # type: ignore[no-untyped-def]
    res = request(dose, **({"timing": timing} if timing else {}))
    first = suggestion(res, rec, kb)
    assert first is not None
    rewritten = apply(res, first)
    assert suggestion(rewritten, rec, kb) is None
    order = parse_order(rewritten, bundle(rewritten), kb, OrderStage.SIGN)
    assert order.dose is not None and order.dose.unit is DoseUnit.MG and order.duration_minutes == 40
    assert deviations(rewritten, rec, kb) == set()


@pytest.mark.parametrize("dose", [mg(0.7, "mL"), None])
def test_no_one_click_rewrite_of_an_unreadable_dose(kb, dose):  # type: ignore[no-untyped-def]
    assert suggestion(request(dose), record(weights=[weight(70)]), kb) is None


@settings(max_examples=150, deadline=None)
@given(kg=st.floats(min_value=30, max_value=300), mg_per_kg=st.floats(min_value=0.05, max_value=3),
       minutes=st.sampled_from([None, 2, 20, 39, 40, 100]), per_week=st.sampled_from([None, 1, 2, 3, 4, 7, 14]))
def test_no_loop_property(kb, kg, mg_per_kg, minutes, per_week):  # type: ignore[no-untyped-def]
    repeat: dict[str, Any] = {}
    if minutes is not None:
        repeat.update(duration=minutes, durationUnit="min")
    if per_week is not None:
        repeat.update(frequency=per_week, period=1, periodUnit="wk")
    res = request(mg(round(mg_per_kg * kg, 2)), timing={"repeat": repeat})
    rec = record(weights=[weight(kg)])
    first = suggestion(res, rec, kb)
    if deviations(res, rec, kb):
        assert first is not None  # a plausible weight: every deviation gets the one-click correction
    if first is not None:
        rewritten = apply(res, first)
        assert suggestion(rewritten, rec, kb) is None
        assert deviations(rewritten, rec, kb) == set()


def test_clock_is_fixed() -> None:
    assert NOW.isoformat() == "2026-11-23T12:00:00+00:00"
