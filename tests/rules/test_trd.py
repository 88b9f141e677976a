"""Treatment resistance (clinical-rules.md §1): adequate, failed, distinct trials and the trial table."""

from __future__ import annotations

import dataclasses

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.model import DataGap, Recognition
from cds_service.rules.findings import CheckStatus, Indicator
from cds_service.rules.trd import assess_trials, trd_rule
from tests.builders.orders import order
from tests.builders.records import cond, good_scores, good_trials, period, record, score, use
from tests.clock import NOW, days_ago

SERTRALINE_DONE = period("sertraline", days_ago(300), days_ago(200), 100)


def _with(kb: Knowledge, **thresholds: float | bool) -> Knowledge:
    return dataclasses.replace(kb, thresholds={**kb.thresholds, **thresholds})


def test_two_adequate_failed_trials_meet_the_criteria(kb):
    out = trd_rule(record(exposures=good_trials(), scores=good_scores()), order(), kb, NOW)
    assert out.findings == ()
    (check,) = out.checks
    assert check.status is CheckStatus.MET
    assert "unverified" not in check.note
    assert {e.resource_id for e in check.evidence} >= {"ms-sertraline", "ms-venlafaxine", "b1-20", "o2-18"}


def test_one_adequate_trial_is_not_enough(kb):
    out = trd_rule(record(exposures=good_trials()[:1], scores=good_scores()), order(), kb, NOW)
    (f,) = out.findings
    assert (f.topic, f.indicator, f.variant) == ("trd-criteria-unmet", Indicator.WARNING, "default")
    assert f.facts["found"] == "1"
    assert f.facts["required"] == "2"
    assert out.checks[0].status is CheckStatus.NOT_MET


@pytest.mark.parametrize(("days", "counts"), [(27, False), (28, True)])
def test_trial_length_boundary(kb, days, counts):
    ongoing = period("bupropion", days_ago(days), None, 300)
    (trial,) = assess_trials(record(exposures=[ongoing]), kb, NOW)
    assert trial.counts is counts
    if not counts:
        assert "too short (ongoing, 27 days; needs 28)" in trial.reasons[0]
    out = trd_rule(record(exposures=[SERTRALINE_DONE, ongoing]), order(), kb, NOW)
    assert (out.findings == ()) is counts


def test_finished_trial_too_short(kb):
    short = period("bupropion", days_ago(100), days_ago(73), 300)
    (trial,) = assess_trials(record(exposures=[short]), kb, NOW)
    assert not trial.counts
    assert trial.reasons == ("too short (27 days; needs 28)",)


@pytest.mark.parametrize(("dose", "counts"), [(49.0, False), (50.0, True)])
def test_dose_floor_boundary(kb, dose, counts):
    (trial,) = assess_trials(record(exposures=[period("sertraline", days_ago(100), days_ago(40), dose)]), kb, NOW)
    assert trial.counts is counts
    if not counts:
        assert trial.reasons == ("dose below the minimum (49 mg/day < 50 mg/day)",)
    else:
        assert trial.reasons[0] == "60 days at or above 50 mg/day"


def test_duration_counts_only_time_at_adequate_dose(kb):
    titrated = period(
        "sertraline",
        days_ago(100),
        days_ago(40),
        uses=[use("sertraline", days_ago(100), days_ago(70), 25), use("sertraline", days_ago(70), days_ago(45), 50)],
    )
    (trial,) = assess_trials(record(exposures=[titrated]), kb, NOW)
    assert not trial.counts
    assert trial.reasons[0].startswith("too short (25 days")


def test_dose_unknown_counts_but_unverified(kb):
    out = trd_rule(
        record(exposures=[SERTRALINE_DONE, period("venlafaxine", days_ago(100), days_ago(30), None)]),
        order(),
        kb,
        NOW,
    )
    assert out.findings == ()
    assert "not verified for" in out.checks[0].note
    trials = assess_trials(record(exposures=[period("venlafaxine", days_ago(100), days_ago(30), None)]), kb, NOW)
    assert trials[0].counts
    assert any(u.startswith("dose unverified") for u in trials[0].unverified)


@pytest.mark.parametrize(("second", "met"), [("fluoxetine", False), ("bupropion", True)])
def test_same_vs_different_mechanism_class(kb, second, met):
    exps = [SERTRALINE_DONE, period(second, days_ago(150), days_ago(60), 300)]
    out = trd_rule(record(exposures=exps), order(), kb, NOW)
    assert (out.findings == ()) is met
    if not met:
        table = "\n".join(out.findings[0].detail)
        assert "same mechanism class as sertraline (SSRI)" in table


def test_distinct_classes_flag_off_counts_same_class(kb):
    exps = [SERTRALINE_DONE, period("fluoxetine", days_ago(150), days_ago(60), 40)]
    out = trd_rule(record(exposures=exps), order(), _with(kb, **{"trd.require_distinct_classes": False}), NOW)
    assert out.findings == ()


@pytest.mark.parametrize(("outcome", "counts"), [(19, True), (18.75, False)])
def test_partial_response_boundary_24_vs_25_percent(kb, outcome, counts):
    # baseline 25: 19 is a 24% improvement (failed), 18.75 is 25% (partial response)
    trial_period = period("sertraline", days_ago(100), days_ago(40), 100)
    scores = [score(25, days_ago(101), sid="base"), score(outcome, days_ago(45), sid="out")]
    (trial,) = assess_trials(record(exposures=[trial_period], scores=scores), kb, NOW)
    assert trial.counts is counts
    assert not trial.unverified
    assert ("partial response" in trial.reasons[-1]) is not counts


def test_no_scores_counts_as_failure_not_documented(kb):
    (trial,) = assess_trials(record(exposures=[SERTRALINE_DONE]), kb, NOW)
    assert trial.counts
    assert trial.unverified == ("failure not documented by a validated scale",)


def test_baseline_window_and_outcome_window(kb):
    trial_period = period("sertraline", days_ago(100), days_ago(40), 100)
    # baseline 31 days before the start is outside the 30-day window; outcome 15 days after the end too
    outside = [score(20, days_ago(131), sid="b"), score(20, days_ago(25), sid="o")]
    (trial,) = assess_trials(record(exposures=[trial_period], scores=outside), kb, NOW)
    assert trial.unverified == ("failure not documented by a validated scale",)
    inside = [score(20, days_ago(130), sid="b"), score(20, days_ago(26), sid="o")]
    (trial,) = assess_trials(record(exposures=[trial_period], scores=inside), kb, NOW)
    assert trial.unverified == ()
    assert trial.reasons[-1].startswith("failed: PHQ-9 20 → 20")


def test_outcome_must_be_at_least_min_weeks_into_trial(kb):
    trial_period = period("sertraline", days_ago(100), days_ago(40), 100)
    early = [score(20, days_ago(99), sid="b"), score(10, days_ago(73), sid="o")]  # 27 days in
    (trial,) = assess_trials(record(exposures=[trial_period], scores=early), kb, NOW)
    assert trial.unverified == ("failure not documented by a validated scale",)


def test_min_trial_weeks_comes_from_configuration(kb):
    exps = [SERTRALINE_DONE, period("bupropion", days_ago(30), None, 300)]
    assert trd_rule(record(exposures=exps), order(), kb, NOW).findings == ()
    longer = _with(kb, **{"trd.min_trial_weeks": 6})
    assert trd_rule(record(exposures=exps), order(), longer, NOW).findings != ()


def test_trial_table_lists_every_trial_with_reasons(kb):
    exps = [
        SERTRALINE_DONE,
        period("fluoxetine", days_ago(190), days_ago(120), 20),
        period("bupropion", days_ago(10), None, 300),
        period("mirtazapine", None, days_ago(5), 30),
    ]
    (f,) = trd_rule(record(exposures=exps), order(), kb, NOW).findings
    table = "\n".join(f.detail)
    assert table.count("\n| ") == 4  # one row per trial
    assert "sertraline" in table and "yes, unverified" in table
    assert "same mechanism class as sertraline" in table
    assert "too short (ongoing, 10 days; needs 28)" in table
    assert "start date unknown" in table


def test_no_trials_at_all(kb):
    (f,) = trd_rule(record(), order(), kb, NOW).findings
    assert f.facts["found"] == "0"
    assert f.detail[0] == "No antidepressant trials found in the medication history."


def test_medications_unobtainable(kb):
    rec = record(available=kinds.ALL - {kinds.MEDICATIONS})
    out = trd_rule(rec, order(), kb, NOW)
    (f,) = out.findings
    assert f.variant == "unobtainable"
    assert out.checks[0].status is CheckStatus.UNDOCUMENTED
    gap = record(exposures=[SERTRALINE_DONE], gaps=[DataGap("medicationRequests", "timed out")])
    (f,) = trd_rule(gap, order(), kb, NOW).findings
    assert f.variant == "default"
    assert "timed out" in f.detail[-1]


def test_not_applicable_to_ptsd(kb):
    out = trd_rule(record(depressed=False, conditions=[cond("p", "ptsd")]), order(), kb, NOW)
    assert out.findings == ()
    assert out.checks[0].status is CheckStatus.NOT_APPLICABLE


def test_bipolar_depression_gets_trd_rule(kb):
    out = trd_rule(record(conditions=[cond("b", "bipolar")]), order(), kb, NOW)
    assert out.findings[0].topic == "trd-criteria-unmet"


def test_not_taken_statements_are_ignored(kb):
    never = period(
        "bupropion",
        days_ago(100),
        days_ago(40),
        uses=[use("bupropion", days_ago(100), days_ago(40), 300, status="not-taken")],
    )
    assert assess_trials(record(exposures=[never]), kb, NOW) == ()


def test_name_recognition_shown_in_table(kb):
    by_name = period(
        "sertraline",
        days_ago(100),
        days_ago(40),
        uses=[use("sertraline", days_ago(100), days_ago(40), 100, recognition=Recognition.NAME)],
    )
    (f,) = trd_rule(record(exposures=[by_name]), order(), kb, NOW).findings
    assert "recognised by name only" in "\n".join(f.detail)


def _ended_without_date(rid: str, start_days_ago: float) -> object:
    """A completed prescription with no end date or supply duration (the builder flags duration-unknown)."""
    return dataclasses.replace(
        use("sertraline", days_ago(start_days_ago), None, 100, rid=rid), ongoing=False, flags=("duration-unknown",)
    )


def test_finished_use_without_end_date_is_not_stretched_to_today(kb):
    single = _ended_without_date("mr-2019", 2500)
    unknown = dataclasses.replace(period("sertraline", days_ago(2500), None, 100, uses=[single]), ongoing=False)
    (trial,) = assess_trials(record(exposures=[unknown]), kb, NOW)
    assert not trial.counts
    assert trial.days is None
    assert "no end date or supply duration recorded" in trial.reasons[0]


@pytest.mark.parametrize(("span_days", "counts"), [(27, False), (28, True)])
def test_refills_without_end_dates_prove_the_span_between_them(kb, span_days, counts):
    first = _ended_without_date("mr-first", 400)
    last = _ended_without_date("mr-last", 400 - span_days)
    refills = dataclasses.replace(period("sertraline", days_ago(400), None, 100, uses=[first, last]), ongoing=False)
    (trial,) = assess_trials(record(exposures=[refills]), kb, NOW)
    assert trial.counts is counts
    assert trial.days == span_days
    if not counts:
        assert "end not recorded, documented for 27 days" in trial.reasons[0]


# --- version 2: esketamine without the class requirement; not repeated as a card during a course -------------

def _two_ssris() -> tuple:  # type: ignore[type-arg]
    from tests.builders.records import score

    trials = (period("sertraline", days_ago(300), days_ago(200), 100), period("escitalopram", days_ago(180), None, 20))
    scores = (score(20, days_ago(305), sid="b1"), score(19, days_ago(205), sid="o1"),
              score(20, days_ago(182), sid="b2"), score(18, days_ago(3), sid="o2"))  # fmt: skip
    return trials, scores


def test_esketamine_needs_two_antidepressants_not_two_classes(kb):
    from cds_service.order.model import Drug, Route

    trials, scores = _two_ssris()
    rec = record(exposures=trials, scores=scores)
    iv = trd_rule(rec, order(), kb, NOW)
    assert [f.topic for f in iv.findings] == ["trd-criteria-unmet"] and "of different classes" in iv.checks[0].note
    esk = trd_rule(rec, order(Drug.ESKETAMINE, Route.INTRANASAL), kb, NOW)
    assert esk.findings == () and esk.checks[0].status is CheckStatus.MET
    assert esk.checks[0].note == "2 adequate failed trials (sertraline, escitalopram)"


def test_esketamine_still_needs_two_different_antidepressants(kb):
    from cds_service.order.model import Drug, Route

    repeat = (period("sertraline", days_ago(400), days_ago(300), 100), period("sertraline", days_ago(180), None, 100))
    out = trd_rule(record(exposures=repeat), order(Drug.ESKETAMINE, Route.INTRANASAL), kb, NOW)
    (finding,) = out.findings
    assert finding.variant == "esketamine" and finding.facts["found"] == "1"
    assert any("same antidepressant as a trial already counted" in line for line in finding.detail)


@pytest.mark.parametrize(("last_dose", "card"), [(56, False), (57, True)])
def test_not_repeated_as_a_card_during_a_course(kb, last_dose, card):
    from cds_service.record.model import Administration

    doses = tuple(Administration(f"a{d}", days_ago(d), "ketamine") for d in (last_dose + 4, last_dose))
    out = trd_rule(record(exposures=(), administrations=doses), order(), kb, NOW)
    assert bool(out.findings) is card
    assert out.checks[0].status is CheckStatus.NOT_MET
    assert ("not repeated as a card during the course" in out.checks[0].note) is not card
