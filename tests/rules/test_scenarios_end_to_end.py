"""Prescriber's-eye scenarios through the real path: FHIR JSON -> build_record -> evaluate -> rendered cards."""

from __future__ import annotations

import logging

import pytest

from tests.builders.fhir import (
    administration,
    ago,
    bp,
    cards,
    condition,
    eligible_trd,
    esketamine_order,
    hcg_positive,
    iv_order,
    patient,
    phq9,
    request,
    statement,
    topics,
    weight,
)

SUMMARY = ("eligibility-summary", "info")
MG = {"unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
BIPOLAR = ("F31.4", "Bipolar disorder, current episode depressed, severe, without psychotic features")


def _mg(value: float) -> dict:
    return {"value": value, **MG}


def _detail(rendered: list[dict], topic: str) -> str:
    return next(c["detail"] for c in rendered if c["source"]["topic"]["code"] == topic)


def test_typical_eligible_trd_patient_gets_the_summary_only(kb):
    assert topics(cards(kb, eligible_trd(), iv_order(_mg(40)))) == [SUMMARY]


def test_bipolar_on_lithium_is_quiet_and_never_dose_unverified(kb):
    resources = [*eligible_trd(), condition(*BIPOLAR), statement("6448", "lithium", 300, None, 900)]
    rendered = cards(kb, resources, iv_order(_mg(40)))
    assert topics(rendered) == [SUMMARY]
    assert "dose unverified" not in rendered[0]["detail"]
    (line,) = [ln for ln in rendered[0]["detail"].splitlines() if ln.startswith("- **Bipolar disorder")]
    assert "taking lithium" in line and "unverified" not in line and "dose" not in line


def test_bipolar_on_lamotrigine_only_is_nonstandard(kb):
    resources = [*eligible_trd(), condition(*BIPOLAR), statement("28439", "lamotrigine", 300, None, 200)]
    rendered = cards(kb, resources, iv_order(_mg(40)))
    assert topics(rendered) == [SUMMARY, ("bipolar-mood-stabilizer-nonstandard", "warning")]
    assert "lamotrigine" in rendered[1]["summary"]


def test_bipolar_on_brexpiprazole_is_critical_and_says_why_it_does_not_count(kb):
    resources = [*eligible_trd(), condition(*BIPOLAR), statement("1658314", "brexpiprazole", 300, None, 2)]
    rendered = cards(kb, resources, iv_order(_mg(40)))
    assert topics(rendered) == [SUMMARY, ("bipolar-mood-stabilizer-missing", "critical")]
    assert "brexpiprazole" in rendered[1]["detail"] and "does not count" in rendered[1]["detail"]
    assert "brexpiprazole does not count" in rendered[0]["detail"]


def test_active_psychosis_card_lists_its_evidence_once(kb):
    rendered = cards(kb, [*eligible_trd(), condition("F20.9", "Schizophrenia, unspecified")], iv_order(_mg(40)))
    assert topics(rendered) == [SUMMARY, ("psychosis", "critical")]
    detail = _detail(rendered, "psychosis")
    assert detail.count("Schizophrenia, unspecified (active)") == 1
    assert [s["label"] for s in rendered[1]["suggestions"]] == ["Remove this draft order"]


def test_responding_patient_mid_course_is_not_warned_about_severity(kb):
    """PHQ-9 22 before the course, 9 after four infusions: no severity or non-response card at the fifth."""
    resources = [r for r in eligible_trd() if r.get("valueInteger") != 19]
    resources += [phq9(22, 22), administration(20), administration(16), administration(12), administration(5),
                  phq9(12, 11), phq9(9, 4)]  # fmt: skip
    rendered = cards(kb, resources, iv_order(_mg(40)))
    assert topics(rendered) == [SUMMARY]
    assert "pre-course PHQ-9 22" in rendered[0]["detail"]


def test_pregnant_patient_card_names_the_condition(kb):
    pregnant = {**condition("Z33.1", "Pregnant state, incidental"), "recordedDate": ago(60)[:10]}
    resources = [*eligible_trd(), pregnant, hcg_positive(3)]
    rendered = cards(kb, resources, iv_order(_mg(40)))
    assert topics(rendered) == [SUMMARY, ("pregnancy", "critical")]
    when = ago(60)[:10]
    expected = f"Pregnancy on the problem list since {when} (Pregnant state, incidental): ketamine not recommended"
    assert rendered[1]["summary"] == expected


@pytest.mark.parametrize(("birth", "indicator"), [("1956-06-01", "info"), ("1962-06-01", "warning")])
def test_esketamine_28_mg_by_age(kb, birth, indicator):
    resources = [patient(birth=birth), *eligible_trd()[1:]]
    rendered = cards(kb, resources, esketamine_order(28))
    expected = [SUMMARY, ("esketamine-dose-low", indicator)]  # v2: REMS is a line of the summary, not a card
    assert sorted(topics(rendered)) == sorted(expected)
    assert topics(rendered)[0] == SUMMARY


def test_crps_protocol_gets_evidence_card_and_no_depression_dose_noise(kb):
    resources = [patient(), condition("G90.50", "Complex regional pain syndrome I, unspecified"), bp(124, 80, 3),
                 weight(70, 3)]  # fmt: skip
    rate = {"value": 0.35, "unit": "mg/kg/h", "system": "http://unitsofmeasure.org", "code": "mg/kg/h"}
    order = iv_order({"value": 1.4, "unit": "mg/kg", "system": "http://unitsofmeasure.org", "code": "mg/kg"},
                     minutes=240, per_week=7, reason=("G90.50", "CRPS type I"), rate=rate)  # fmt: skip
    assert topics(cards(kb, resources, order)) == [SUMMARY, ("chronic-pain-evidence", "info")]


def test_years_of_refills_without_supply_durations_make_trials(kb):
    """A MedicationRequest-only feed: monthly refills, no expectedSupplyDuration. Trials come from the refills."""
    resources = [patient(), condition("F33.2", "Major depressive disorder, recurrent severe"), bp(120, 80, 5),
                 weight(70, 5), phq9(19, 8), phq9(20, 905), phq9(19, 700), phq9(19, 605), phq9(18, 440)]  # fmt: skip
    resources += [request("36437", "sertraline", 900 - 30 * k, 100) for k in range(8)]
    resources += [request("39786", "venlafaxine", 600 - 30 * k, 150) for k in range(6)]
    resources += [request("42347", "bupropion", 360 - 30 * k, 300, "active" if k == 11 else "completed")
                  for k in range(12)]  # fmt: skip
    rendered = cards(kb, resources, iv_order(_mg(35)))
    assert topics(rendered) == [SUMMARY]
    assert "adequate failed trials of different classes (sertraline, venlafaxine" in rendered[0]["detail"]


@pytest.mark.parametrize(
    "order",
    [
        iv_order({"value": 0.35, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"}),
        iv_order(None),
    ],
    ids=["volume", "no-dose"],
)
def test_unreadable_dose_says_so_and_what_the_standard_is(kb, caplog, order):
    caplog.set_level(logging.WARNING)
    rendered = cards(kb, eligible_trd(), order)
    card = next(c for c in rendered if c["source"]["topic"]["code"] == "pre-dose-data-missing")
    assert card["indicator"] == "warning"
    assert card["summary"] == "Record a readable dose (mg or mg/kg) before dosing"
    assert "the anaesthetic-range and other dose checks were not done" in card["detail"]
    assert "the standard for 80 kg is 40 mg over 40 minutes" in card["detail"]
    assert "shortened" not in caplog.text


def test_every_card_is_short_and_overridable(kb, caplog):
    """Across the scenarios: summaries fit without the renderer cutting them; warning/critical carry reasons."""
    caplog.set_level(logging.WARNING)
    scenarios = [
        ([*eligible_trd(), condition(*BIPOLAR)], iv_order(_mg(90))),
        ([*eligible_trd(), condition("F20.9", "Schizophrenia, unspecified"), bp(170, 104, 1)], iv_order(_mg(20))),
        ([patient(), condition("M79.7", "Fibromyalgia")], iv_order(_mg(20), minutes=10, per_week=5)),
        ([patient(birth="1990-01-01"), *eligible_trd()[1:]], esketamine_order(85)),
    ]
    for resources, order in scenarios:
        for card in cards(kb, resources, order):
            assert len(card["summary"]) < 140
            if card["indicator"] != "info":
                assert card["overrideReasons"], card["source"]["topic"]["code"]
    assert "shortened" not in caplog.text
