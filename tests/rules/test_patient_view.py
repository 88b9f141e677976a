"""Section 11 of clinical-rules.md, rule by rule: ``course-status`` and ``trd-candidate`` on typed records.

Boundary pairs at the fixed clock: a course's latest session 56 days ago vs just over, response 49% vs 50%,
remission at the line of each instrument vs one point above, ketamine, esketamine or ECT 364 vs 366 days ago,
one vs two adequate failed trials. The same pairs run end to end, with and without prefetch, as fixtures
(``tests/sandbox/test_sandbox_patient_view.py``).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

import pytest

from cds_service.cards.render import build_cards
from cds_service.knowledge.model import Indicator, Knowledge
from cds_service.record.model import (
    Administration,
    ConditionFact,
    DataGap,
    Instrument,
    PatientRecord,
    ProcedureFact,
)
from cds_service.rules.findings import CreateAssessment, Finding, Patient
from cds_service.rules.patient_view import (
    COURSE_STATUS,
    PATIENT_VIEW_RULES,
    TRD_CANDIDATE,
    course_status,
    has_depressive_disorder,
    trd_candidate,
)
from tests.builders.records import bp, cond, given, good_scores, good_trials, period, phq9, record, score
from tests.clock import NOW, days_ago

ME = Patient("Patient/p1")


def findings(rec: PatientRecord, kb: Knowledge) -> list[Finding]:
    """Both rules through the rule set, every card rendered (summaries fit: the renderer would log a cut)."""
    evaluation = PATIENT_VIEW_RULES.evaluate(rec, ME, kb, NOW)
    cards = build_cards(evaluation, None, None, kb, base_url="https://cds.test", patient_id="p1")
    assert all(card.indicator == "info" and len(card.summary) <= 140 for card in cards)
    assert all(f.indicator is Indicator.INFO for f in evaluation.findings)
    return list(evaluation.findings)


def topics(rec: PatientRecord, kb: Knowledge) -> list[str]:
    return [f.topic for f in findings(rec, kb)]


def course(rec: PatientRecord, kb: Knowledge) -> Finding:
    (found,) = course_status(rec, ME, kb, NOW).findings
    return found


def acute(*, latest: float, baseline: float = 20, instrument: Instrument = Instrument.PHQ9, **kw: Any) -> PatientRecord:
    """Three IV ketamine infusions 12, 9 and 5 days ago; the pre-course score 15 days ago, the latest 2 days ago."""
    scores = (score(baseline, days_ago(15), instrument, "base"), score(latest, days_ago(2), instrument, "late"))
    return record(administrations=given(3, start_days_ago=12, every=3.5), scores=scores, bps=(bp(120, 80),), **kw)


def with_flag(kb: Knowledge, name: str, value: float | bool) -> Knowledge:
    return dataclasses.replace(kb, thresholds=MappingProxyType({**kb.thresholds, name: value}))


# ---------------------------------------------------------------- course-status


@pytest.mark.parametrize(("latest_days_ago", "under_way"), [(56, True), (56.01, False)])
def test_a_course_is_under_way_while_its_latest_session_is_within_8_weeks(
    kb: Knowledge, latest_days_ago: float, under_way: bool
) -> None:
    rec = record(administrations=[Administration("a1", days_ago(latest_days_ago + 4), "ketamine"),
                                  Administration("a2", days_ago(latest_days_ago), "ketamine")])  # fmt: skip
    assert (COURSE_STATUS in topics(rec, kb)) is under_way
    assert TRD_CANDIDATE not in topics(rec, kb)  # ketamine within the year, whatever the course


@pytest.mark.parametrize(("latest", "variant"), [(10.2, "no-response"), (10, "response")])
def test_response_is_a_reduction_of_at_least_50_percent(kb: Knowledge, latest: float, variant: str) -> None:
    found = course(acute(latest=latest), kb)
    assert found.variant == variant
    assert found.facts["change"] == ("49% lower" if latest == 10.2 else "50% lower")
    assert found.facts["instrument"] == "PHQ-9" and found.facts["baseline"] == "20"


@pytest.mark.parametrize(
    ("instrument", "baseline", "line"), [(Instrument.PHQ9, 20, 5), (Instrument.MADRS, 40, 10), (Instrument.HAMD, 30, 7)]
)
def test_remission_at_the_instruments_line_and_a_response_one_point_above(
    kb: Knowledge, instrument: Instrument, baseline: float, line: float
) -> None:
    assert course(acute(latest=line, baseline=baseline, instrument=instrument), kb).variant == "remission"
    assert course(acute(latest=line + 1, baseline=baseline, instrument=instrument), kb).variant == "response"


def test_without_a_pre_course_score_response_is_not_judged(kb: Knowledge) -> None:
    rec = record(administrations=given(3, start_days_ago=12), scores=(phq9(8, 2),), bps=(bp(120, 80),))
    found = course(rec, kb)
    assert found.variant == "unjudged" and found.facts["reason"] == "no score in the 30 days before the first session"
    rec = record(administrations=given(3, start_days_ago=12), scores=(phq9(20, 15),), bps=(bp(120, 80),))
    assert course(rec, kb).facts["reason"] == "no PHQ-9 since the first session"


def test_the_card_lists_the_sessions_the_scores_and_names_no_id(kb: Knowledge) -> None:
    found = course(acute(latest=9), kb)
    assert found.facts["sessions"] == "3 infusions" and found.facts["drug"] == "IV ketamine"
    sessions = next(line for line in found.detail if line.startswith("- Sessions"))
    assert sessions == f"- Sessions (intravenous): {days_ago(12).date()}, {days_ago(8.5).date()}, {days_ago(5).date()}"
    assert any("pre-course PHQ-9 20" in line and "55% lower, response" in line for line in found.detail)
    assert len(found.audit) == 3 and not any("ketamine-" in line for line in found.detail)


@pytest.mark.parametrize(
    ("sessions", "every", "latest", "expected"),
    [
        (1, 3.5, 19, "response is judged after 2 infusions"),
        (3, 3.5, 9, "acute course, 3 of 4-6 infusions"),
        (3, 3.5, 18, "no response after 3 infusions"),
        (6, 3, 9, "the acute course of 4-6 infusions is complete: plan maintenance or stop"),
        (6, 7, 9, "maintenance: taper from every 5 days to every 3-4 weeks"),
    ],
)
def test_what_comes_next_for_iv_ketamine(
    kb: Knowledge, sessions: int, every: float, latest: float, expected: str
) -> None:
    start = 3 + (sessions - 1) * every
    rec = record(administrations=given(sessions, start_days_ago=start, every=every),
                 scores=(phq9(20, start + 2), phq9(latest, 1)), bps=(bp(120, 80),))  # fmt: skip
    nxt = next(line for line in course(rec, kb).detail if line.startswith("- Next: "))
    assert expected in nxt


@pytest.mark.parametrize(
    ("sessions", "every", "latest", "expected"),
    [
        (7, 3.5, 20, "induction, twice a week in weeks 1-4 (session 7 of 8)"),
        (8, 3.5, 20, "induction is over without a response: the label asks to review whether to continue"),
        (9, 4, 9, "once a week in weeks 5-8"),
        (12, 5, 9, "every 1 or 2 weeks"),
    ],
)
def test_what_comes_next_for_esketamine(
    kb: Knowledge, sessions: int, every: float, latest: float, expected: str
) -> None:
    start = 2 + (sessions - 1) * every
    rec = record(administrations=given(sessions, start_days_ago=start, every=every, drug="esketamine"),
                 scores=(phq9(22, start + 2), phq9(latest, 1)), bps=(bp(120, 80),))  # fmt: skip
    found = course(rec, kb)
    assert found.facts["drug"] == "Esketamine" and found.facts["sessions"] == f"{sessions} sessions"
    assert any(line == "- Sessions (intranasal): " + ", ".join(str(a.when.date()) for a in rec.administrations
                                                                 if a.when) for line in found.detail)  # fmt: skip
    assert expected in next(line for line in found.detail if line.startswith("- Next: "))


@pytest.mark.parametrize(("score_days", "bp_days"), [(30, 30), (31, 30), (30, 31), (31, 31)])
def test_what_is_due_before_the_next_session(kb: Knowledge, score_days: float, bp_days: float) -> None:
    rec = record(administrations=given(3, start_days_ago=40), scores=(phq9(20, 45), phq9(9, score_days)),
                 bps=(bp(150, 95, days_ago(bp_days)),))  # fmt: skip
    found = course(rec, kb)
    due = next(line for line in found.detail if line.startswith("- Before the next session: "))
    wanted = []
    if score_days > 30:
        wanted.append(CreateAssessment("phq9"))
        assert "a depression score, none in the last 30 days (the latest: PHQ-9 9 on" in due
    else:
        assert "depression score up to date" in due
    if bp_days > 30:
        wanted.append(CreateAssessment("vital-signs"))
        assert "no blood pressure in the last 30 days; the last, BP 150/95 mmHg on" in due
    else:
        assert "a blood pressure on the day, as before every dose (the latest: BP 150/95 mmHg" in due
    assert list(found.suggestions) == wanted


def test_no_course_status_for_a_patient_without_a_depressive_disorder(kb: Knowledge) -> None:
    rec = acute(latest=9, depressed=False, conditions=(cond("pain", "chronic-pain-crps"),))
    assert findings(rec, kb) == []
    assert not has_depressive_disorder(rec, kb, NOW)


# ---------------------------------------------------------------- trd-candidate


def candidate(**kw: Any) -> PatientRecord:
    """Active MDD, two adequate failed trials of different classes documented by PHQ-9; BP normal."""
    kw.setdefault("exposures", good_trials())
    return record(scores=good_scores(), bps=(bp(120, 80),), **kw)


def test_a_patient_who_meets_the_criteria_gets_the_quiet_card(kb: Knowledge) -> None:
    (found,) = findings(candidate(), kb)
    assert (found.topic, found.variant, found.facts["count"]) == (TRD_CANDIDATE, "default", "2")
    assert found.facts["trials"] == "sertraline, venlafaxine"
    assert any(line.startswith("| sertraline") for line in found.detail)


def test_one_adequate_failed_trial_is_not_enough(kb: Knowledge) -> None:
    assert findings(candidate(exposures=good_trials()[:1]), kb) == []


def test_two_trials_of_one_class_are_not_enough(kb: Knowledge) -> None:
    same = (period("sertraline", days_ago(300), days_ago(200), 100), period("escitalopram", days_ago(180), None, 20))
    assert findings(candidate(exposures=same), kb) == []


def test_trials_without_scores_count_but_the_card_says_so(kb: Knowledge) -> None:
    rec = record(exposures=good_trials(), scores=(phq9(19, 3),), bps=(bp(120, 80),))
    (found,) = findings(rec, kb)
    assert found.variant == "unverified"


@pytest.mark.parametrize(("days", "shown"), [(364, False), (366, True)])
@pytest.mark.parametrize("drug", ["ketamine", "esketamine"])
def test_ketamine_or_esketamine_given_in_the_last_year(kb: Knowledge, drug: str, days: float, shown: bool) -> None:
    rec = candidate(administrations=(Administration("a1", days_ago(days), drug),))
    assert topics(rec, kb) == ([TRD_CANDIDATE] if shown else [])


@pytest.mark.parametrize(("days", "shown"), [(364, False), (366, True)])
def test_ketamine_prescribed_in_the_last_year(kb: Knowledge, days: float, shown: bool) -> None:
    prescribed = period("ketamine", days_ago(days + 30), days_ago(days), 50, role="ketamine")
    assert topics(candidate(exposures=(*good_trials(), prescribed)), kb) == ([TRD_CANDIDATE] if shown else [])


@pytest.mark.parametrize(("days", "shown"), [(364, False), (366, True)])
def test_ect_in_the_last_year(kb: Knowledge, days: float, shown: bool) -> None:
    ect = ProcedureFact("p1", days_ago(days), "Electroconvulsive therapy", frozenset({"ect"}))
    assert topics(candidate(procedures=(ect,)), kb) == ([TRD_CANDIDATE] if shown else [])


@pytest.mark.parametrize(
    "finding",
    [
        cond("psy", "psychosis", label="Schizophrenia"),  # §3 critical
        cond("bip", "bipolar", label="Bipolar I disorder"),  # §2: bipolar depression without a mood stabiliser
        cond("icp", "intracranial-pressure", label="Hydrocephalus"),
    ],
)
def test_a_critical_finding_of_sections_2_or_3_rules_it_out(kb: Knowledge, finding: ConditionFact) -> None:
    assert findings(candidate(conditions=(finding,)), kb) == []


def test_a_blood_pressure_at_the_hold_line_rules_it_out_and_one_below_does_not(kb: Knowledge) -> None:
    assert findings(record(exposures=good_trials(), scores=good_scores(), bps=(bp(160, 100),)), kb) == []
    assert topics(record(exposures=good_trials(), scores=good_scores(), bps=(bp(159, 99),)), kb) == [TRD_CANDIDATE]


def test_a_warning_of_section_3_does_not_rule_it_out(kb: Knowledge) -> None:
    rec = candidate(conditions=(cond("aud", "substance-use", label="Alcohol dependence"),))
    assert topics(rec, kb) == [TRD_CANDIDATE]


def test_the_deployment_switch(kb: Knowledge) -> None:
    assert trd_candidate(candidate(), ME, with_flag(kb, "patient_view.trd_candidate", False), NOW).findings == ()
    assert trd_candidate(candidate(), ME, kb, NOW).findings


def test_no_card_without_a_depressive_disorder(kb: Knowledge) -> None:
    rec = candidate(depressed=False, conditions=(cond("ptsd", "ptsd", label="PTSD"),))
    assert findings(rec, kb) == []


def test_when_earlier_treatment_could_not_be_read_the_card_says_so(kb: Knowledge) -> None:
    rec = candidate(gaps=(DataGap("procedures", "the FHIR server answered 503"),))
    (found,) = findings(rec, kb)
    assert found.detail[-1] == (
        "- Earlier ketamine, esketamine or ECT could not be checked completely: the FHIR server answered 503"
    )
    assert not any("could not be checked" in line for line in findings(candidate(), kb)[0].detail)


# ---------------------------------------------------------------- data that could not be read: never silence

UNREACHABLE = "the FHIR server could not be reached"


@pytest.mark.parametrize(("gap", "said"), [(None, False), (DataGap("administrations", UNREACHABLE), True)])
def test_no_course_found_in_sessions_that_could_not_be_read_is_said(
    kb: Knowledge, gap: DataGap | None, said: bool
) -> None:
    rec = candidate(exposures=(), gaps=(gap,) if gap else ())
    assert topics(rec, kb) == ([COURSE_STATUS] if said else [])
    if said:
        found = course(rec, kb)
        assert found.variant == "unchecked"
        assert found.detail == (f"- Ketamine and esketamine given: could not be read completely ({UNREACHABLE})",)


def test_a_course_found_is_shown_as_usual_although_some_sessions_could_not_be_read(kb: Knowledge) -> None:
    gap = DataGap("administrations", UNREACHABLE)
    assert course(acute(latest=9, gaps=(gap,)), kb).variant == "response"


@pytest.mark.parametrize(
    ("gap", "what"),
    [
        (None, None),
        (DataGap("medicationStatements", UNREACHABLE), "the medication history"),
        (DataGap("depressionScores", UNREACHABLE), "the depression scores"),
    ],
)
def test_one_trial_found_in_data_that_could_not_be_read_completely_is_said(
    kb: Knowledge, gap: DataGap | None, what: str | None
) -> None:
    rec = candidate(exposures=good_trials()[:1], gaps=(gap,) if gap else ())
    if what is None:
        assert findings(rec, kb) == []
        return
    (found,) = findings(rec, kb)
    assert (found.topic, found.variant) == (TRD_CANDIDATE, "unchecked")
    assert found.facts == {"what": what, "found": "1", "required": "2"}
    assert found.detail[0] == f"- {what.capitalize()}: could not be read completely ({UNREACHABLE})"
    assert any(line.startswith("| sertraline") for line in found.detail)


def test_two_trials_met_in_spite_of_a_gap_are_a_candidate_and_a_critical_finding_still_rules_out(
    kb: Knowledge,
) -> None:
    gap = DataGap("medicationStatements", UNREACHABLE)
    assert findings(candidate(gaps=(gap,)), kb)[0].variant == "default"
    psychosis = cond("psy", "psychosis", label="Schizophrenia")
    assert findings(candidate(exposures=good_trials()[:1], gaps=(gap,), conditions=(psychosis,)), kb) == []
