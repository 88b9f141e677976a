"""Bipolar disorder whatever its status, cover, and mania-current (clinical-rules.md v2 §2). Fixed clock; the
8-week line of mania as a boundary pair (55 vs 57 days)."""

from __future__ import annotations

import dataclasses

import pytest

from cds_service.rules.bipolar import bipolar_rule, mania_rule
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator
from tests.builders.orders import order
from tests.builders.records import cond, period, record
from tests.clock import NOW, days_ago

BIPOLAR = cond("b", "bipolar", label="Bipolar I disorder")


def covered(*drugs: tuple[str, str]):  # type: ignore[no-untyped-def]
    return record(conditions=[BIPOLAR], exposures=[period(d, days_ago(90), role=r) for d, r in drugs])


@pytest.mark.parametrize(
    ("categories", "status", "indicator", "variant"),
    [
        (("bipolar",), "active", Indicator.CRITICAL, "default"),
        (("bipolar",), None, Indicator.CRITICAL, "default"),
        (("bipolar",), "relapse", Indicator.CRITICAL, "default"),
        (("bipolar",), "inactive", Indicator.WARNING, "inactive"),
        (("bipolar",), "resolved", Indicator.WARNING, "inactive"),
        (("bipolar", "bipolar-remission"), "active", Indicator.WARNING, "inactive"),
        (("bipolar", "cyclothymia"), "active", Indicator.WARNING, "inactive"),
    ],
)
def test_bipolar_whatever_its_status(kb, categories, status, indicator, variant):
    out = bipolar_rule(record(conditions=[cond("b", *categories, status=status)]), order(), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator, f.variant) == ("bipolar-mood-stabilizer-missing", indicator, variant)
    assert f.suggestions == ((DeleteOrder(),) if indicator is Indicator.CRITICAL else ())


@pytest.mark.parametrize(
    ("drug", "role", "variant"),
    [
        ("quetiapine", "mood-stabilizer-other", "default"),
        ("carbamazepine", "mood-stabilizer-other", "default"),
        ("risperidone", "mood-stabilizer-other", "default"),
        ("lamotrigine", "bipolar-depression-agent", "no-antimanic"),
        ("lurasidone", "bipolar-depression-agent", "no-antimanic"),
    ],
)
def test_nonstandard_cover(kb, drug, role, variant):
    (f,) = bipolar_rule(covered((drug, role)), order(), kb, NOW).findings
    assert (f.topic, f.indicator, f.variant) == ("bipolar-mood-stabilizer-nonstandard", Indicator.WARNING, variant)
    assert f.facts["stabilizers"] == drug


def test_lithium_or_valproate_is_cover_and_brexpiprazole_is_none(kb):
    assert bipolar_rule(covered(("lithium", "mood-stabilizer-standard")), order(), kb, NOW).findings == ()
    rec = record(
        conditions=[BIPOLAR],
        exposures=[period("brexpiprazole", days_ago(90), role="none", drug_class="second-generation antipsychotic")],
    )
    (f,) = bipolar_rule(rec, order(), kb, NOW).findings
    assert (f.topic, f.indicator) == ("bipolar-mood-stabilizer-missing", Indicator.CRITICAL)
    assert "brexpiprazole" in f.detail[-1]


def test_antimanic_and_depression_agent_together_is_plain_nonstandard(kb):
    rec = covered(("lamotrigine", "bipolar-depression-agent"), ("quetiapine", "mood-stabilizer-other"))
    (f,) = bipolar_rule(rec, order(), kb, NOW).findings
    assert f.variant == "default" and f.facts["stabilizers"] == "lamotrigine, quetiapine"


def test_no_bipolar_is_looked_for_and_not_found(kb):
    (check,) = bipolar_rule(record(), order(), kb, NOW).checks
    assert (check.status, check.note) == (CheckStatus.MET, "")


def episode(age: float | None, status: str = "active"):  # type: ignore[no-untyped-def]
    c = cond(f"m-{age}", "mania", "bipolar", status=status, label="Bipolar disorder, current episode manic")
    when = days_ago(age) if age is not None else None
    return dataclasses.replace(c, onset=when, recorded=when)


@pytest.mark.parametrize(
    ("age", "indicator", "variant"),
    [
        (10, Indicator.CRITICAL, "recent"),
        (55, Indicator.CRITICAL, "recent"),
        (57, Indicator.WARNING, "older"),
        (None, Indicator.WARNING, "older"),
    ],
)
def test_mania_current_by_recency(kb, age, indicator, variant):
    (f,) = mania_rule(record(conditions=[episode(age)]), order(), kb, NOW).findings
    assert (f.topic, f.indicator, f.variant) == ("mania-current", indicator, variant)
    assert f.suggestions == ((DeleteOrder(),) if indicator is Indicator.CRITICAL else ())


def test_inactive_mania_gives_nothing(kb):
    assert mania_rule(record(conditions=[episode(10, "resolved")]), order(), kb, NOW).findings == ()


def test_manic_episode_on_lithium_is_still_mania_current(kb):
    rec = record(conditions=[episode(7)], exposures=[period("lithium", days_ago(300), role="mood-stabilizer-standard")])
    assert [f.topic for f in mania_rule(rec, order(), kb, NOW).findings] == ["mania-current"]
    assert bipolar_rule(rec, order(), kb, NOW).findings == ()
