"""Section 5 (v2): esketamine dose bands (age-65 exception), first dose of a course, frequency by course week."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.order.model import DoseUnit, OrderStage, Route
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator
from tests.builders.orders import esk_order
from tests.builders.records import given, record
from tests.rules.support import by_topic, check, run, run_all, topics

AGE_64 = date(1962, 11, 24)  # 64 on 2026-11-23 (birthday tomorrow)
AGE_65 = date(1961, 11, 23)  # 65 today
BANDS = {"esketamine-dose-low", "esketamine-dose-high"}
PRIOR = given(4, start_days_ago=13, every=3.5, drug="esketamine")  # a course under way: 4 sessions, week 2


def dose_findings(mg: float, kb, birth: date | None = AGE_64):  # type: ignore[no-untyped-def]
    findings, checks = run(record(birth=birth, administrations=PRIOR), esk_order(mg), kb)
    return [f for f in findings if f.topic in BANDS], checks


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
    assert f.suggestions == (DeleteOrder(),)
    assert check(checks, "Dose").status is CheckStatus.NOT_MET


# --- REMS is a summary line now, never a card ----------------------------------------------------------

@pytest.mark.parametrize("order", [esk_order(56), esk_order(None, stage=OrderStage.SELECT), esk_order(None)])
def test_no_rems_card(kb, order):  # type: ignore[no-untyped-def]
    findings, _ = run(record(administrations=PRIOR), order, kb)
    assert "esketamine-rems" not in topics(findings)
    monitoring = kb.topics["eligibility-summary"].variants["monitoring-esketamine"].rationale
    assert "REMS" in monitoring and "2 hours" in monitoring


# --- unreadable doses: an item of the data card ---------------------------------------------------------

@pytest.mark.parametrize(
    ("dose", "unit", "problem"),
    [(None, DoseUnit.MG, "no dose on the order"), (0.8, DoseUnit.MG_PER_KG, "'0.8 mg/kg' is weight-based")],
)
def test_unreadable_dose_on_sign_is_an_item_of_the_data_card(kb, dose, unit, problem):  # type: ignore[no-untyped-def]
    findings, checks, missing = run_all(record(administrations=PRIOR), esk_order(dose, unit=unit), kb)
    assert findings == []
    (item,) = missing
    assert item.key == "order-dose" and problem in item.line and "not checked" in item.line
    assert check(checks, "Dose").status is CheckStatus.UNDOCUMENTED


def test_select_without_dose_is_not_yet_missing(kb):  # type: ignore[no-untyped-def]
    findings, checks, missing = run_all(record(), esk_order(None, stage=OrderStage.SELECT), kb)
    assert findings == [] and missing == []
    assert check(checks, "Dose").note == "no dose entered yet"


def test_esketamine_by_another_route_gets_no_intranasal_rules(kb):  # type: ignore[no-untyped-def]
    findings, checks = run(record(), esk_order(112, route=Route.INTRAVENOUS), kb)
    assert findings == []
    assert check(checks, "Dose").status is CheckStatus.NOT_APPLICABLE


def test_no_iv_rules_for_esketamine(kb):  # type: ignore[no-untyped-def]
    _, checks, missing = run_all(record(), esk_order(56), kb)
    assert missing == [] and not [c for c in checks if c.criterion == "Body weight"]


# --- the first session of a course ----------------------------------------------------------------------

@pytest.mark.parametrize(("prior", "mg", "fires"), [
    ((), 84, True),  # first session at 84 mg
    (PRIOR, 84, False),  # 84 mg from the second session
    ((), 56, False),  # the labelled day-1 dose
    ((), 57, True),
    (given(2, start_days_ago=60, every=3.5, drug="esketamine"), 84, True),  # last session 56.5 days ago: new course
    (given(2, start_days_ago=59.5, every=3.5, drug="esketamine"), 84, False),  # last 56 days ago: under way
    (given(2, start_days_ago=10, drug="ketamine"), 84, True),  # IV ketamine is another drug's course
])
def test_first_dose_boundary(kb, prior, mg, fires):  # type: ignore[no-untyped-def]
    findings, _ = run(record(administrations=prior), esk_order(mg), kb)
    assert ("esketamine-first-dose" in topics(findings)) is fires
    if fires:
        f = by_topic(findings, "esketamine-first-dose")
        assert f.indicator is Indicator.WARNING and f.facts["first_mg"] == "56"


def test_first_dose_above_the_maximum_is_only_the_critical_card(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), esk_order(112), kb)
    assert topics(findings) == {"esketamine-dose-high"}


# --- frequency by course week ---------------------------------------------------------------------------

def _course(start_days_ago: float, sessions: int = 2):  # type: ignore[no-untyped-def]
    return record(administrations=given(sessions, start_days_ago=start_days_ago, every=3.5, drug="esketamine"))


@pytest.mark.parametrize(("rec_start", "per_week", "fires", "variant"), [
    (None, 2, False, None), (None, 3, True, "esketamine-induction"),  # first session: week 1
    (20, 2, False, None), (20, 3, True, "esketamine-induction"),  # week 3
    (27.9, 2, False, None),  # day 27: still week 4
    (28, 2, True, "esketamine-maintenance"),  # day 28: week 5
    (28, 1, False, None), (60, 1, False, None), (60, 2, True, "esketamine-maintenance"),
])
def test_frequency_by_course_week(kb, rec_start, per_week, fires, variant):  # type: ignore[no-untyped-def]
    rec = record() if rec_start is None else _course(rec_start, sessions=int(rec_start // 3.5) + 1)
    findings, checks = run(rec, esk_order(56, per_week=per_week), kb)
    hits = [f for f in findings if f.topic == "frequency-above-protocol"]
    assert bool(hits) is fires
    if fires:
        assert (hits[0].variant, hits[0].indicator, hits[0].suggestions) == (variant, Indicator.WARNING, ())
    schedule = check(checks, "Esketamine schedule")
    assert schedule.status is (CheckStatus.NOT_MET if fires else CheckStatus.MET)
    in_induction = rec_start is None or rec_start < 28  # day 28 of the course is week 5
    allowed = "at most 2 a week in weeks 1-4" if in_induction else "at most 1 a week from week 5"
    assert schedule.note.endswith(f"{per_week} sessions a week ordered (the label allows {allowed})")
