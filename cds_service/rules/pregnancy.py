"""Pregnancy (clinical-rules.md §3 ``pregnancy``): pregnancy Conditions that expire, and hCG tests read by value.

Conditions: an active pregnancy entry (value set ``pregnancy``) dated within ``pregnancy.condition_days`` is
critical unless a Condition dated on or after it ends it (``pregnancy-end``: delivery, abortive outcome,
childbirth or puerperium codes); when a negative hCG test is dated after it, the card is a warning that asks to
confirm. An undated active entry is a warning in a patient aged ``pregnancy.undated_min_age``-``..._max_age``;
older or ended entries are a checklist line.

Tests (the newest readable hCG decides; a later negative test supersedes an earlier positive one):

| newest test                                     | within ``pregnancy.hcg_lookback_days`` | 31-300 days old  |
|-------------------------------------------------|------------------------------------------|------------------|
| positive (qualitative, or >= 25 IU/L)           | critical                                 | warning          |
| equivocal (5 to < 25 IU/L)                      | warning: repeat the test                 | checklist line   |
| quantitative, unit unreadable, value >= 5       | warning: hCG not readable                | checklist line   |
| raised (positive or equivocal), patient male    | warning: pregnancy or hCG-secreting tumour | checklist line |
| negative (or "<5")                              | no card; an earlier positive is named    | -                |

Quantitative values arrive in IU/L from the record (``PregnancyTest.iu_per_l``, mIU/mL = IU/L, [IU]/mL x 1000);
a comparator is honoured: "<5" is negative, ">25" positive, and a bound that cannot place the value on one
side of a line is equivocal. Cards name the ordered drug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import ConditionFact, Evidence, PatientRecord, PregnancyTest
from cds_service.rules.contraindications import (
    conditions_unreadable,
    evidence_of,
    finding,
    names_for_summary,
)
from cds_service.rules.findings import Check, CheckStatus, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import condition_names, conditions_in, data_problem, day

CRITERION = "Pregnancy"
_READS = (kinds.CONDITIONS, kinds.PREGNANCY_TESTS)


class HcgResult(StrEnum):
    NEGATIVE = "negative"
    EQUIVOCAL = "equivocal"
    POSITIVE = "positive"
    UNREADABLE = "unreadable"  # a quantitative value whose unit could not be read


def hcg_result(test: PregnancyTest, kb: Knowledge) -> HcgResult | None:
    """What one test says; None when it says nothing (no result could be read)."""
    positive_line = kb.number("pregnancy.hcg_positive_iu_per_l")
    equivocal_line = kb.number("pregnancy.hcg_equivocal_iu_per_l")
    value, comparator = test.iu_per_l, test.comparator
    if test.unit_unreadable:  # only the number as sent is known, in a unit that could not be read
        if comparator in ("<", "<="):
            return None
        raw = test.value_as_sent
        return HcgResult.UNREADABLE if raw is None or raw >= equivocal_line else None
    if value is not None:
        if comparator in ("<", "<="):  # the value is at most ``value``
            below_equivocal = value <= equivocal_line if comparator == "<" else value < equivocal_line
            return HcgResult.NEGATIVE if below_equivocal else HcgResult.EQUIVOCAL
        if comparator in (">", ">="):  # the value is at least ``value``
            return HcgResult.POSITIVE if value >= positive_line else HcgResult.EQUIVOCAL
        if value >= positive_line:
            return HcgResult.POSITIVE
        return HcgResult.EQUIVOCAL if value >= equivocal_line else HcgResult.NEGATIVE
    if test.positive is None:
        return None
    return HcgResult.POSITIVE if test.positive else HcgResult.NEGATIVE


def describe_test(test: PregnancyTest, result: HcgResult) -> str:
    """The test in a prescriber's words: "hCG 30 IU/L (positive) on 2026-11-20", "hCG positive on 2026-11-20"."""
    if result is HcgResult.UNREADABLE:
        number = fmt(test.value_as_sent) if test.value_as_sent is not None else "a value"
        value = f"{number} in a unit that could not be read"
    elif test.iu_per_l is not None:
        value = f"{test.comparator or ''}{fmt(round(test.iu_per_l, 1))} IU/L ({result.value})"
    else:
        value = result.value
    return f"hCG {value} on {day(test.when)}"


@dataclass
class _Judgement:
    """What one order's pregnancy check reads, and the checklist lines it has found so far."""

    record: PatientRecord
    kb: Knowledge
    now: datetime
    drug: str
    tests: list[tuple[PregnancyTest, HcgResult]]
    lines: list[str] = field(default_factory=list)
    line_evidence: list[Evidence] = field(default_factory=list)

    def line(self, text: str, *evidence: Evidence) -> None:
        self.lines.append(text)
        self.line_evidence.extend(evidence)


@dataclass(frozen=True)
class _Candidate:
    indicator: Indicator
    variant: str
    facts: dict[str, str]
    evidence: tuple[Evidence, ...]
    note: str


def pregnancy_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``pregnancy``: one card, the most severe of what the Conditions and the hCG tests say."""
    judged = _Judgement(record, kb, now, order.drug.value, _readable_tests(record, kb, now))
    candidates: list[_Candidate] = []
    unreadable = conditions_unreadable(record, CRITERION)
    if unreadable is None:
        candidates.extend(_from_conditions(judged))
    candidates.extend(_from_tests(judged))
    lines = judged.lines
    if not candidates:
        if unreadable is not None:
            return unreadable
        if data_problem(record, kinds.PREGNANCY_TESTS) and not record.pregnancy_tests:
            lines.append("hCG tests could not be obtained")
        evidence = tuple(dict.fromkeys(judged.line_evidence))
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, "; ".join(lines), evidence, _READS),))
    top = max(candidates, key=lambda c: c.indicator.urgency)
    evidence = tuple(dict.fromkeys(e for c in candidates for e in c.evidence))
    card = finding("pregnancy", top.indicator, top.facts, evidence, variant=top.variant)
    note = "; ".join((*(c.note for c in candidates), *lines))
    return RuleOutcome((card,), (Check(CRITERION, CheckStatus.NOT_MET, note, evidence, _READS),))


def _readable_tests(record: PatientRecord, kb: Knowledge, now: datetime) -> list[tuple[PregnancyTest, HcgResult]]:
    """Dated tests that say something, newest first."""
    found = [(t, hcg_result(t, kb)) for t in record.pregnancy_tests if t.when is not None and t.when <= now]
    readable = [(t, r) for t, r in found if r is not None]
    return sorted(readable, key=lambda tr: tr[0].when or now, reverse=True)


def _from_conditions(judged: _Judgement) -> list[_Candidate]:
    record, kb, now, drug, tests = judged.record, judged.kb, judged.now, judged.drug, judged.tests
    days = kb.number("pregnancy.condition_days")
    entries = conditions_in(record, "pregnancy")
    ends = [
        c
        for c in conditions_in(record, "pregnancy-end", active_only=False)
        if c.when is not None and "pregnancy-end" not in c.history_categories and "pregnancy" not in c.categories
    ]
    current: list[ConditionFact] = []
    undated: list[ConditionFact] = []
    for entry in entries:
        when = entry.when
        if when is None:
            undated.append(entry)
            continue
        ended = next((e for e in ends if (e.when or now) >= when), None)
        if ended is not None:
            judged.line(
                f"{entry.label} ({day(when)}) ended by {ended.label} on {day(ended.when)}",
                entry.evidence(),
                ended.evidence(),
            )
        elif now - timedelta(days=days) <= when <= now:
            current.append(entry)
        else:
            judged.line(
                f"{entry.label} dated {day(when)}, more than {fmt(days)} days ago: not counted", entry.evidence()
            )
    out: list[_Candidate] = []
    if current:
        facts = {"condition": names_for_summary(current, "pregnancy"), "date": day(current[0].when), "drug": drug}
        newest = max((c.when for c in current if c.when), default=None)
        negative = next(
            (t for t, r in tests if r is HcgResult.NEGATIVE and newest is not None and (t.when or now) > newest), None
        )
        ev = evidence_of(current)
        if negative is not None:
            facts["test_date"] = day(negative.when)
            note = f"{condition_names(current)}, but a negative hCG on {day(negative.when)}: confirm"
            out.append(
                _Candidate(Indicator.WARNING, "condition-negative-test", facts, (*ev, negative.evidence()), note)
            )
        else:
            out.append(
                _Candidate(Indicator.CRITICAL, "condition", facts, ev, f"{condition_names(current)} ({day(newest)})")
            )
    if undated:
        age = record.patient.age_on(now.date())
        low, high = kb.number("pregnancy.undated_min_age"), kb.number("pregnancy.undated_max_age")
        if age is None or low <= age <= high:
            facts = {"condition": names_for_summary(undated, "pregnancy"), "drug": drug}
            note = f"{condition_names(undated)}: undated, active"
            out.append(_Candidate(Indicator.WARNING, "undated", facts, evidence_of(undated), note))
        else:
            judged.line(f"{condition_names(undated)}: undated, at age {age}: not counted", *evidence_of(undated))
    return out


def _from_tests(judged: _Judgement) -> list[_Candidate]:
    record, kb, now, drug, tests = judged.record, judged.kb, judged.now, judged.drug, judged.tests
    if not tests:
        return []
    latest, result = tests[0]
    age = (now - (latest.when or now)).total_seconds() / 86400
    recent = age <= kb.number("pregnancy.hcg_lookback_days")
    shown = describe_test(latest, result)
    facts = {"test": shown, "test_date": day(latest.when), "drug": drug}
    ev = (latest.evidence(),)
    raised = result in (HcgResult.POSITIVE, HcgResult.EQUIVOCAL)
    if raised and record.patient.gender == "male":
        if recent:
            return [_Candidate(Indicator.WARNING, "male", facts, ev, f"{shown} in a patient recorded male")]
    elif result is HcgResult.POSITIVE:
        if recent:
            return [_Candidate(Indicator.CRITICAL, "test", facts, ev, shown)]
        if age <= kb.number("pregnancy.hcg_old_positive_days"):
            return [_Candidate(Indicator.WARNING, "old-test", facts, ev, f"{shown}, no later negative test")]
    elif result is HcgResult.EQUIVOCAL and recent:
        return [_Candidate(Indicator.WARNING, "equivocal", facts, ev, f"{shown}: repeat the test")]
    elif result is HcgResult.UNREADABLE and recent:
        return [_Candidate(Indicator.WARNING, "unreadable", facts, ev, f"{shown}: hCG not readable")]
    elif result is HcgResult.NEGATIVE:
        earlier = next((t for t, r in tests[1:] if r is HcgResult.POSITIVE), None)
        if earlier is not None:
            judged.line(
                f"{shown} supersedes {describe_test(earlier, HcgResult.POSITIVE)}",
                latest.evidence(),
                earlier.evidence(),
            )
        else:
            judged.line(shown, latest.evidence())
        return []
    judged.line(f"{shown}: older than {fmt(kb.number('pregnancy.hcg_lookback_days'))} days", latest.evidence())
    return []


RULES: tuple[OrderRule, ...] = (pregnancy_rule,)
