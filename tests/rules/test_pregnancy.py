"""Pregnancy (clinical-rules.md v2 §3): entries that expire, endings, hCG by value, unit and comparator.

Fixed clock ``NOW``; every threshold as a boundary pair (299 vs 301 days, hCG 4 / 10 / 25 IU/L, "<5", 30 vs 31
days). The units themselves (mIU/mL, [IU]/mL) are read into IU/L by the record (tests/record); here the rule
applies the thresholds to what was read, and end to end below from FHIR JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, Route
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import PatientFacts, PregnancyTest
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator
from cds_service.rules.pregnancy import HcgResult, hcg_result, pregnancy_rule
from tests.builders.orders import order
from tests.builders.records import cond, record
from tests.clock import NOW, days_ago

ESKETAMINE = order(Drug.ESKETAMINE, Route.INTRANASAL)


def entry(age: float | None, category: str = "pregnancy", status: str | None = "active", label: str = "Pregnant state"):
    c = cond(f"{category}-{age}", category, status=status, label=label)
    when = days_ago(age) if age is not None else None
    return dataclasses.replace(c, onset=when, recorded=when)


def hcg(
    age: float,
    *,
    positive: bool | None = None,
    iu: float | None = None,
    comparator: str | None = None,
    unreadable: bool = False,
    raw: float | None = None,
) -> PregnancyTest:
    return PregnancyTest(
        f"hcg-{age}-{iu}", days_ago(age), positive, iu, comparator, unreadable, raw if unreadable else iu
    )


def woman(age_years: int = 30) -> PatientFacts:
    return PatientFacts(NOW.date().replace(year=NOW.year - age_years), "female")


def run(kb: Knowledge, *, conditions=(), tests=(), patient: PatientFacts | None = None, the_order=None):
    rec = dataclasses.replace(record(conditions=conditions, tests=tests), patient=patient or woman())
    return pregnancy_rule(rec, the_order or order(), kb, NOW)


def card(out):  # type: ignore[no-untyped-def]
    (f,) = out.findings
    return f.indicator, f.variant


# ---------------------------------------------------------------- Conditions


@pytest.mark.parametrize(
    ("age", "expected"),
    [(299, (Indicator.CRITICAL, "condition")), (300, (Indicator.CRITICAL, "condition")), (301, None)],
)
def test_pregnancy_entry_counts_for_300_days(kb, age, expected):
    out = run(kb, conditions=[entry(age)])
    if expected:
        assert card(out) == expected
        assert out.findings[0].suggestions == (DeleteOrder(),)
    else:
        assert out.findings == ()
        assert "more than 300 days ago: not counted" in out.checks[0].note


def test_the_1967_tubal_pregnancy_of_an_88_year_old_gives_no_card(kb):
    old = entry(365 * 59, label="Tubal pregnancy")
    out = run(kb, conditions=[old], patient=woman(88))
    assert out.findings == ()
    undated = entry(None, label="Tubal pregnancy")
    assert run(kb, conditions=[undated], patient=woman(88)).findings == ()
    assert "undated, at age 88: not counted" in run(kb, conditions=[undated], patient=woman(88)).checks[0].note


@pytest.mark.parametrize(("years", "warns"), [(11, False), (12, True), (55, True), (56, False)])
def test_undated_entry_is_a_warning_at_age_12_to_55(kb, years, warns):
    out = run(kb, conditions=[entry(None)], patient=woman(years))
    assert (card(out) == (Indicator.WARNING, "undated")) if warns else out.findings == ()


def test_unknown_age_undated_entry_warns(kb):
    out = run(kb, conditions=[entry(None)], patient=PatientFacts(None, "female"))
    assert card(out) == (Indicator.WARNING, "undated")


@pytest.mark.parametrize("ending", ["Outcome of delivery", "Spontaneous abortion", "Puerperal sepsis"])
def test_a_later_delivery_or_loss_ends_the_entry(kb, ending):
    out = run(kb, conditions=[entry(200), entry(20, "pregnancy-end", status="resolved", label=ending)])
    assert out.findings == ()
    assert f"ended by {ending}" in out.checks[0].note


def test_an_ending_before_the_entry_does_not_end_it(kb):
    out = run(kb, conditions=[entry(100), entry(400, "pregnancy-end", label="Outcome of delivery")])
    assert card(out) == (Indicator.CRITICAL, "condition")


def test_resolved_entry_gives_nothing(kb):
    assert run(kb, conditions=[entry(50, status="resolved")]).findings == ()


def test_a_later_negative_test_lowers_the_entry_to_confirm(kb):
    out = run(kb, conditions=[entry(100)], tests=[hcg(5, positive=False)])
    assert card(out) == (Indicator.WARNING, "condition-negative-test")
    assert out.findings[0].suggestions == ()


def test_cards_name_the_ordered_drug(kb):
    assert run(kb, conditions=[entry(40)], the_order=ESKETAMINE).findings[0].facts["drug"] == "esketamine"
    assert run(kb, conditions=[entry(40)]).findings[0].facts["drug"] == "ketamine"


# ---------------------------------------------------------------- hCG tests


@pytest.mark.parametrize(
    ("iu", "comparator", "result"),
    [
        (4, None, HcgResult.NEGATIVE),
        (5, None, HcgResult.EQUIVOCAL),
        (10, None, HcgResult.EQUIVOCAL),
        (24.9, None, HcgResult.EQUIVOCAL),
        (25, None, HcgResult.POSITIVE),
        (5, "<", HcgResult.NEGATIVE),
        (5, "<=", HcgResult.EQUIVOCAL),
        (4, "<=", HcgResult.NEGATIVE),
        (25, "<", HcgResult.EQUIVOCAL),
        (25, ">", HcgResult.POSITIVE),
        (10, ">", HcgResult.EQUIVOCAL),
        (10000, ">=", HcgResult.POSITIVE),
    ],
)
def test_quantitative_thresholds_and_comparators(kb, iu, comparator, result):
    assert hcg_result(hcg(2, iu=iu, comparator=comparator), kb) is result


@pytest.mark.parametrize(
    ("iu", "expected"),
    [(4, None), (10, (Indicator.WARNING, "equivocal")), (25, (Indicator.CRITICAL, "test"))],
)
def test_hcg_4_10_25_iu_per_l(kb, iu, expected):
    out = run(kb, tests=[hcg(3, iu=iu)])
    assert (card(out) if out.findings else None) == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (30, (Indicator.CRITICAL, "test")),
        (31, (Indicator.WARNING, "old-test")),
        (300, (Indicator.WARNING, "old-test")),
        (301, None),
    ],
)
def test_positive_test_critical_30_days_then_a_warning_to_300(kb, age, expected):
    out = run(kb, tests=[hcg(age, positive=True)])
    assert (card(out) if out.findings else None) == expected


def test_a_later_negative_test_supersedes_and_the_line_names_both(kb):
    out = run(kb, tests=[hcg(20, positive=True), hcg(2, iu=3)])
    assert out.findings == ()
    note = out.checks[0].note
    assert "hCG 3 IU/L (negative)" in note and "supersedes hCG positive" in note
    assert len(out.checks[0].evidence) == 2


def test_less_than_5_is_negative(kb):
    assert run(kb, tests=[hcg(2, iu=5, comparator="<")]).findings == ()


def test_unreadable_unit_warns_from_5(kb):
    assert card(run(kb, tests=[hcg(2, unreadable=True, raw=12)])) == (Indicator.WARNING, "unreadable")
    assert run(kb, tests=[hcg(2, unreadable=True, raw=4)]).findings == ()
    assert card(run(kb, tests=[hcg(2, unreadable=True)])) == (Indicator.WARNING, "unreadable")


@pytest.mark.parametrize(("iu", "warns"), [(4, False), (10, True), (30, True)])
def test_raised_hcg_in_a_patient_recorded_male(kb, iu, warns):
    male = PatientFacts(NOW.date().replace(year=NOW.year - 40), "male")
    out = run(kb, tests=[hcg(3, iu=iu)], patient=male)
    assert (card(out) == (Indicator.WARNING, "male")) if warns else out.findings == ()


def test_conditions_unobtainable_still_reads_tests(kb):
    rec = dataclasses.replace(
        record(depressed=False, tests=[hcg(2, positive=True)], available=kinds.ALL - {kinds.CONDITIONS}),
        patient=woman(),
    )
    out = pregnancy_rule(rec, order(), kb, NOW)
    assert card(out) == (Indicator.CRITICAL, "test")
    quiet = dataclasses.replace(record(depressed=False, available=kinds.ALL - {kinds.CONDITIONS}), patient=woman())
    assert pregnancy_rule(quiet, order(), kb, NOW).checks[0].status is CheckStatus.UNDOCUMENTED


# ---------------------------------------------------------------- from FHIR JSON (record + rule)

ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def _fhir_condition(code: str, display: str, days: float) -> dict[str, Any]:
    when = days_ago(days).date().isoformat()
    return {
        "resourceType": "Condition",
        "id": f"c-{code}-{days}",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": ICD, "code": code, "display": display}]},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "onsetDateTime": when,
    }


@pytest.mark.parametrize(
    ("code", "display", "fires"),
    [
        ("O99.340", "Other mental disorders complicating pregnancy, unspecified trimester", True),
        ("O99.345", "Other mental disorders complicating the puerperium", False),
        ("O26.891", "Other specified pregnancy related conditions, first trimester", True),
        ("O80", "Encounter for full-term uncomplicated delivery", False),
        ("O03.9", "Complete or unspecified spontaneous abortion without complication", False),
        ("Z34.00", "Encounter for supervision of normal first pregnancy, unspecified trimester", True),
        ("Z3A.20", "20 weeks gestation of pregnancy", True),
        ("O90.89", "Other complications of the puerperium, not elsewhere classified", False),
    ],
)
def test_pregnancy_codes_end_and_puerperium_from_fhir(kb, code, display, fires):
    rec = build_record(
        [
            {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1995-01-01"},
            _fhir_condition(code, display, 60),
        ],
        kb,
        available=kinds.ALL,
    )
    out = pregnancy_rule(rec, order(), kb, NOW)
    assert bool(out.findings) is fires


def test_not_pregnant_and_pregnancy_test_negative_by_name_are_no_pregnancy(kb):
    texts = ["Not pregnant", "Pregnancy test negative", "Family history of pregnancy loss"]
    resources = [
        {"resourceType": "Condition", "id": f"t{i}", "subject": {"reference": "Patient/p"}, "code": {"text": t}}
        for i, t in enumerate(texts)
    ]
    rec = build_record(resources, kb, available=kinds.ALL)
    assert pregnancy_rule(rec, order(), kb, NOW).findings == ()
