"""The precautions new in clinical-rules.md v2 §3: drug-interaction, minor-patient, genitourinary-toxicity,
lactation. Fixed clock; boundary pairs (MAOI stopped 13 vs 15 days ago, 17 y 364 d vs 18 y, 5 vs 6
administrations, breastfeeding 364 vs 366 days ago)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest

from cds_service.hooks.catalog import PREFETCH
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import Administration, LactationFact, PatientFacts
from cds_service.rules.drug_interaction import interaction_rule
from cds_service.rules.findings import CheckStatus, Indicator
from cds_service.rules.genitourinary import genitourinary_rule
from cds_service.rules.lactation import lactation_rule
from cds_service.rules.minor_patient import minor_patient_rule
from tests.builders.orders import order
from tests.builders.records import cond, period, record
from tests.clock import NOW, days_ago

# ---------------------------------------------------------------- drug-interaction


@pytest.mark.parametrize(("stopped", "warns"), [(13, True), (14, True), (15, False)])
def test_maoi_stopped_within_14_days(kb, stopped, warns):
    rec = record(exposures=[period("phenelzine", days_ago(200), days_ago(stopped), role="maoi")])
    out = interaction_rule(rec, order(), kb, NOW)
    assert [(f.topic, f.variant) for f in out.findings] == ([("drug-interaction", "maoi")] if warns else [])


@pytest.mark.parametrize("drug", ["selegiline", "rasagiline", "safinamide", "tranylcypromine"])
def test_every_maoi_current(kb, drug):
    (f,) = interaction_rule(record(exposures=[period(drug, days_ago(30), role="maoi")]), order(), kb, NOW).findings
    assert (f.indicator, f.facts["medicine"]) == (Indicator.WARNING, drug)


def test_stimulant_only_while_current(kb):
    current = record(exposures=[period("methylphenidate", days_ago(30), role="psychostimulant")])
    (f,) = interaction_rule(current, order(), kb, NOW).findings
    assert f.variant == "stimulant"
    stopped = record(exposures=[period("methylphenidate", days_ago(30), days_ago(2), role="psychostimulant")])
    assert interaction_rule(stopped, order(), kb, NOW).findings == ()


def test_benzodiazepines_and_opioids_give_a_sedation_line_not_a_card(kb):
    rec = record(
        exposures=[
            period("lorazepam", days_ago(30), role="benzodiazepine"),
            period("oxycodone", days_ago(30), role="opioid"),
        ]
    )
    out = interaction_rule(rec, order(), kb, NOW)
    assert out.findings == ()
    (line,) = [c for c in out.checks if c.criterion == "Sedating medicines"]
    assert line.note == "lorazepam, oxycodone: sedation: monitor breathing and SpO2"


def test_catalogue_roles_for_interactions(kb):
    meds = kb.medications
    assert (
        "maoi" in meds.ingredients["selegiline"].roles and "antidepressant" not in meds.ingredients["selegiline"].roles
    )
    assert meds.ingredients["selegiline-transdermal"].roles == {"antidepressant", "maoi"}
    assert meds.ingredients_for_text(["EMSAM 6 mg/24 hr transdermal patch"]) == ("selegiline-transdermal",)
    assert meds.ingredients_for_text(["Adderall XR 20 mg"]) == ("amphetamine",)
    assert meds.ingredients_for_text(["dexmethylphenidate 10 mg"]) == ("dexmethylphenidate",)


# ---------------------------------------------------------------- minor-patient


def born(day: date, latest: date | None = None) -> PatientFacts:
    return PatientFacts(day, "female", latest)


@pytest.mark.parametrize(("birthday", "minor"), [(date(2008, 11, 24), True), (date(2008, 11, 23), False)])
def test_17_years_364_days_vs_18_years_today(kb, birthday, minor):
    rec = dataclasses.replace(record(), patient=born(birthday))
    out = minor_patient_rule(rec, order(), kb, NOW)
    assert [f.topic for f in out.findings] == (["minor-patient"] if minor else [])


def test_age_on_the_first_planned_administration(kb):
    rec = dataclasses.replace(record(), patient=born(date(2008, 11, 30)))  # 18 on 2026-11-30
    later = dataclasses.replace(order(), first_planned=NOW + timedelta(days=10))
    assert minor_patient_rule(rec, later, kb, NOW).findings == ()
    assert [f.topic for f in minor_patient_rule(rec, order(), kb, NOW).findings] == ["minor-patient"]
    past = dataclasses.replace(order(), first_planned=NOW - timedelta(days=400))
    assert [f.topic for f in minor_patient_rule(rec, past, kb, NOW).findings] == ["minor-patient"]


def test_partial_birth_date_uses_its_latest_possible_day(kb):
    rec = build_record([{"resourceType": "Patient", "id": "p", "birthDate": "2008"}], kb, available=kinds.ALL)
    assert rec.patient.birth_date_latest == date(2008, 12, 31)
    (f,) = minor_patient_rule(rec, order(), kb, NOW).findings  # born 2008: could be 17 until 2026-12-31
    assert f.facts["age"] == "17"


def test_no_birth_date_is_a_line(kb):
    (check,) = minor_patient_rule(record(), order(), kb, NOW).checks
    assert (check.status, check.note) == (CheckStatus.UNDOCUMENTED, "date of birth not recorded")


# ---------------------------------------------------------------- genitourinary-toxicity

CYSTITIS = cond("ic", "interstitial-cystitis", label="Interstitial cystitis (chronic) without hematuria")


def given(n: int, first: float = 400) -> tuple[Administration, ...]:
    return tuple(Administration(f"a{i}", days_ago(first + i * 7), "ketamine") for i in range(n))


@pytest.mark.parametrize(("count", "warns"), [(5, False), (6, True)])
def test_cystitis_with_6_administrations(kb, count, warns):
    out = genitourinary_rule(record(conditions=[CYSTITIS], administrations=given(count)), order(), kb, NOW)
    assert [(f.topic, f.variant) for f in out.findings] == ([("genitourinary-toxicity", "cystitis")] if warns else [])


def test_cystitis_with_a_course_under_way(kb):
    out = genitourinary_rule(record(conditions=[CYSTITIS], administrations=given(2, first=5)), order(), kb, NOW)
    assert [f.variant for f in out.findings] == ["cystitis"]


def test_ketamine_cystitis_named_whatever_the_history(kb):
    named = cond("k", "ketamine-uropathy", "interstitial-cystitis", label="Ketamine-induced ulcerative cystitis")
    out = genitourinary_rule(record(conditions=[named]), order(), kb, NOW)
    assert [(f.topic, f.indicator, f.variant) for f in out.findings] == [
        ("genitourinary-toxicity", Indicator.WARNING, "named")
    ]


# ---------------------------------------------------------------- lactation


def test_lactation_prefetch_key_is_declared():
    (key,) = [p for p in PREFETCH if p.key == "lactation"]
    assert key.kind == kinds.LACTATION and "category=social-history" in key.template and not key.required


@pytest.mark.parametrize(("age", "warns"), [(364, True), (365, True), (366, False)])
def test_breastfeeding_observation_within_12_months(kb, age, warns):
    rec = record(lactation=(LactationFact("o1", days_ago(age), "Breastfeeding status: yes"),))
    out = lactation_rule(rec, order(), kb, NOW)
    assert [f.topic for f in out.findings] == (["lactation"] if warns else [])


@pytest.mark.parametrize(("age", "warns"), [(200, True), (400, False), (None, True)])
def test_lactating_mother_condition(kb, age, warns):
    c = cond("z", "lactation", label="Encounter for care and examination of lactating mother")
    c = dataclasses.replace(c, onset=days_ago(age) if age else None, recorded=days_ago(age) if age else None)
    out = lactation_rule(record(conditions=[c]), order(), kb, NOW)
    assert [f.topic for f in out.findings] == (["lactation"] if warns else [])


def _obs(code_text: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": code_text},
        "effectiveDateTime": days_ago(20).isoformat(),
        **value,
    }


@pytest.mark.parametrize(
    ("resource", "counts"),
    [
        (_obs("Breastfeeding status", valueCodeableConcept={"text": "Exclusively breastfeeding"}), True),
        (_obs("Breastfeeding status", valueCodeableConcept={"text": "Yes"}), True),
        (_obs("Currently breastfeeding"), True),
        (_obs("Breastfeeding", valueBoolean=True), True),
        (_obs("Breastfeeding", valueBoolean=False), False),
        (_obs("Breastfeeding status", valueCodeableConcept={"text": "No"}), False),
        (_obs("Breastfeeding status", valueString="Formula feeding"), False),
        (_obs("Breastfeeding status", valueString="Unknown"), False),
        (_obs("Not breastfeeding"), False),
        (_obs("Tobacco smoking status", valueString="Never smoker"), False),
    ],
)
def test_observations_that_say_breastfeeding(kb, resource, counts):
    rec = build_record([resource], kb, available=kinds.ALL)
    assert bool(rec.lactation) is counts
