"""Treatment resistance (clinical-rules.md §1): ``trd-criteria-unmet``.

Every antidepressant exposure period is a trial. A trial counts when it lasted long enough at or above
the ingredient's minimum daily dose and failed (less than the partial-response improvement on a validated
scale). Trials with no dose or no scores still count, marked unverified. For IV ketamine, with
``trd.require_distinct_classes`` the counted trials must come from different mechanism classes; for esketamine
two different antidepressants suffice, as the label says (``trd.require_distinct_classes_esketamine``, off).

During a course of the ordered drug (``rules/course.py``) the card is not repeated: the decision was taken when
the course began. The checklist line stays and says so.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import Evidence, ExposurePeriod, MedicationUse, PatientRecord, SeverityScore
from cds_service.rules.course import course_under_way
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, OrderRule, RuleOutcome
from cds_service.rules.indication import data_problem, day, determine_indication

CRITERION = "Treatment resistance"
READS = (kinds.MEDICATIONS, kinds.SCORES)
_NOT_TAKEN = frozenset({"not-taken", "entered-in-error", "cancelled", "draft"})
_ANTIDEPRESSANT_EXCLUDED = frozenset({"ketamine", "esketamine"})  # the ordered drug is never a prior trial


@dataclass(frozen=True)
class Trial:
    """One antidepressant trial and the verdict on it."""

    period: ExposurePeriod
    days: int | None  # days at an adequate (or unknown) dose; None when the start is unknown
    counts: bool  # adequate and failed (before the distinct-class check)
    reasons: tuple[str, ...]  # why it does or does not count, in plain words
    unverified: tuple[str, ...] = ()  # "dose unverified", "failure not documented by a validated scale"
    evidence: tuple[Evidence, ...] = ()
    same_class_as: str | None = None  # set when a counted trial repeats a class already counted

    @property
    def counted(self) -> bool:
        return self.counts and self.same_class_as is None

    @property
    def class_key(self) -> str:
        return self.period.drug_class or f"unknown class ({self.period.ingredient})"


def distinct_classes_required(order: MedicationOrder, kb: Knowledge) -> bool:
    """IV ketamine: different mechanism classes (seed-derived default on); esketamine: as the label (off)."""
    if order.drug is Drug.ESKETAMINE:
        return kb.flag("trd.require_distinct_classes_esketamine")
    return kb.flag("trd.require_distinct_classes")


def assess_trials(
    record: PatientRecord, kb: Knowledge, now: datetime, *, distinct: bool | None = None
) -> tuple[Trial, ...]:
    """Every antidepressant trial on record (oldest first) with its verdict.

    ``distinct``: whether counted trials must come from different mechanism classes (default: the IV ketamine
    setting ``trd.require_distinct_classes``); otherwise one trial per ingredient counts.
    """
    periods = [
        p
        for p in record.exposures_with_role("antidepressant")
        if not p.roles & _ANTIDEPRESSANT_EXCLUDED and (not p.uses or any(u.status not in _NOT_TAKEN for u in p.uses))
    ]
    periods.sort(key=lambda p: (p.start is None, p.start or now))
    timeline = ScoreTimeline.of(record.scores)
    trials = [_assess(p, record, kb, now, timeline) for p in periods]
    # distinct mechanism classes: one counted trial per class (a verified one when there is one)
    if distinct is None:
        distinct = kb.flag("trd.require_distinct_classes")
    chosen: dict[str, Trial] = {}
    for t in trials:
        key = t.class_key if distinct else t.period.ingredient
        if t.counts and (key not in chosen or (chosen[key].unverified and not t.unverified)):
            chosen[key] = t
    result: list[Trial] = []
    for t in trials:
        key = t.class_key if distinct else t.period.ingredient
        if t.counts and chosen[key] is not t:
            t = Trial(t.period, t.days, t.counts, t.reasons, t.unverified, t.evidence, chosen[key].period.ingredient)
        result.append(t)
    return tuple(result)


def _assess(
    period: ExposurePeriod, record: PatientRecord, kb: Knowledge, now: datetime, timeline: ScoreTimeline
) -> Trial:
    min_days = round(kb.number("trd.min_trial_weeks") * 7)
    # first and last use of the period (uses are newest first): years of monthly refills stay two lines
    evidence: list[Evidence] = list(dict.fromkeys(u.evidence() for u in (period.uses[-1:] + period.uses[:1])))
    reasons: list[str] = []
    unverified: list[str] = []
    ingredient = kb.medications.ingredients.get(period.ingredient)
    floor = ingredient.min_daily_dose_mg if ingredient else None
    start, end = period.start, _documented_end(period.uses, now)
    dosed = [u for u in period.uses if u.daily_dose_mg is not None]
    dose_checked = floor is not None and bool(dosed)
    if floor is None or not dosed:
        why = "no minimum dose known for this drug" if floor is None else "dose not recorded"
        unverified.append(f"dose unverified ({why})")
    else:
        adequate = [u for u in dosed if (u.daily_dose_mg or 0.0) >= floor]
        if not adequate:
            top = max(u.daily_dose_mg or 0.0 for u in dosed)
            reasons.append(f"dose below the minimum ({top:g} mg/day < {floor:g} mg/day)")
            return Trial(period, _days(start, end), False, tuple(reasons), (), tuple(evidence))
        start, end = _span(adequate, period, now)
    if start is None or end is None or (end <= start and not period.ongoing):
        missing = "start date unknown" if start is None else "no end date or supply duration recorded"
        reasons.append(f"{missing}: duration cannot be checked")
        return Trial(period, None, False, tuple(reasons), tuple(unverified), tuple(evidence))
    days = (end - start).days
    if days < min_days:
        if period.ongoing:
            so_far = "ongoing, "
        elif period.end is None:
            so_far = "end not recorded, documented for "
        else:
            so_far = ""
        reasons.append(f"too short ({so_far}{days} days; needs {min_days})")
        return Trial(period, days, False, tuple(reasons), tuple(unverified), tuple(evidence))
    outcome = _response(timeline, kb, start, end)
    if outcome is None:
        unverified.append("failure not documented by a validated scale")
    else:
        baseline, final, pct = outcome
        evidence.extend((baseline.evidence(), final.evidence()))
        change = f"{baseline.instrument.value} {baseline.value:g} → {final.value:g} ({round(pct, 1):g}% improvement)"
        if pct >= kb.number("trd.partial_response_pct"):
            reasons.append(f"partial response: {change}")
            return Trial(period, days, False, tuple(reasons), tuple(unverified), tuple(evidence))
        reasons.append(f"failed: {change}")
    reasons.insert(0, f"{days} days at or above {floor:g} mg/day" if dose_checked and floor else f"{days} days")
    return Trial(period, days, True, tuple(reasons), tuple(unverified), tuple(evidence))


def _span(
    uses: list[MedicationUse], period: ExposurePeriod, now: datetime
) -> tuple[datetime | None, datetime | None]:
    starts = [u.start or period.start for u in uses]
    start = None if any(s is None for s in starts) else min(s for s in starts if s is not None)
    return start, _documented_end(uses, now)


def _documented_end(uses: tuple[MedicationUse, ...] | list[MedicationUse], now: datetime) -> datetime | None:
    """The last day the uses prove the drug was taken: now while ongoing, else the latest recorded end or start.

    A use that ended without an end date (duration unknown) proves only its own dates, so the span is a lower
    bound; it is never stretched to today.
    """
    if any(u.ongoing for u in uses):
        return now
    known = [min(u.end, now) for u in uses if u.end is not None] + [u.start for u in uses if u.start is not None]
    return max(known) if known else None


def _days(start: datetime | None, end: datetime | None) -> int | None:
    return None if start is None or end is None else (end - start).days


class ScoreTimeline:
    """Dated severity scores sorted once by time, so that each trial's windows are found by bisection.

    Ties keep the record's order (newest first): of two scores at the same instant, the one listed first
    in ``record.scores`` is the one a window reports, as a scan of ``record.scores`` would.
    """

    def __init__(self, dated: Sequence[tuple[datetime, SeverityScore]]) -> None:
        """``dated``: (when, score) in ascending time; ties in the record's order reversed."""
        self._times = [when for when, _s in dated]
        self._scores = [s for _when, s in dated]
        by_instrument: dict[object, tuple[list[datetime], list[SeverityScore]]] = {}
        for when, s in dated:
            times, scores = by_instrument.setdefault(s.instrument, ([], []))
            times.append(when)
            scores.append(s)
        self._by_instrument = by_instrument

    @classmethod
    def of(cls, scores: Sequence[SeverityScore]) -> ScoreTimeline:
        indexed = [(s.when, -i, s) for i, s in enumerate(scores) if s.when is not None]
        indexed.sort(key=lambda item: (item[0], item[1]))
        return cls([(when, s) for when, _i, s in indexed])

    def newest_first(self, low: datetime, high: datetime) -> list[SeverityScore]:
        """Scores dated within [low, high], newest first."""
        window = self._scores[bisect_left(self._times, low) : bisect_right(self._times, high)]
        window.reverse()
        return window

    def newest(self, instrument: object, low: datetime, high: datetime) -> SeverityScore | None:
        """The newest score of one instrument dated within [low, high]."""
        times, scores = self._by_instrument.get(instrument, ([], []))
        end = bisect_right(times, high)
        if end <= bisect_left(times, low):
            return None
        return scores[end - 1]


def _response(
    timeline: ScoreTimeline, kb: Knowledge, start: datetime, end: datetime
) -> tuple[SeverityScore, SeverityScore, float] | None:
    """Baseline and outcome scores of one instrument and the % improvement; None without a usable pair."""
    before = timedelta(days=kb.number("trd.baseline_before_days"))
    after_start = timedelta(days=kb.number("trd.baseline_after_start_days"))
    after_end = timedelta(days=kb.number("trd.outcome_after_end_days"))
    min_weeks = timedelta(weeks=kb.number("trd.min_trial_weeks"))
    for final in timeline.newest_first(start + min_weeks, end + after_end):
        baseline = timeline.newest(final.instrument, start - before, start + after_start)
        if baseline is None or baseline.value <= 0:
            continue
        return baseline, final, (baseline.value - final.value) / baseline.value * 100
    return None


def trd_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``trd-criteria-unmet``: fewer than the required adequate failed trials (no card during a course)."""
    indication = determine_indication(record, order, kb, now)
    if not indication.is_depression:
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.NOT_APPLICABLE, "", reads=READS),))
    required = round(kb.number("trd.min_adequate_trials"))
    distinct = distinct_classes_required(order, kb)
    trials = assess_trials(record, kb, now, distinct=distinct)
    counted = [t for t in trials if t.counted]
    evidence = tuple(dict.fromkeys(e for t in trials for e in t.evidence))
    names = ", ".join(t.period.ingredient for t in counted) or "none"
    kind = "adequate failed trials" + (" of different classes" if distinct else "")
    shaky = [t for t in counted if t.unverified]
    if len(counted) >= required:
        note = f"{len(counted)} {kind} ({names})"
        if shaky:
            note += f"; failure or dose not verified for {', '.join(t.period.ingredient for t in shaky)}"
        return RuleOutcome(checks=(Check(CRITERION, CheckStatus.MET, note, evidence, READS),))
    problem = data_problem(record, kinds.MEDICATIONS)
    status = CheckStatus.UNDOCUMENTED if problem and not trials else CheckStatus.NOT_MET
    note = f"{len(counted)} of {required} {kind} ({names})"
    course = course_under_way(record, kb, now, order.drug.value)
    if course is not None:
        note += f"; not repeated as a card during the course that began on {day(course.start)}"
        return RuleOutcome(checks=(Check(CRITERION, status, note, evidence, READS),))
    detail = list(trial_table(trials, now))
    if problem:
        detail.append(f"- Medication history could not be read completely: {problem}")
    finding = Finding(
        topic="trd-criteria-unmet",
        indicator=Indicator.WARNING,
        facts={"found": str(len(counted)), "required": str(required), "problem": problem or ""},
        detail=tuple(detail),
        evidence=evidence,
        variant="unobtainable" if problem and not trials else ("esketamine" if not distinct else "default"),
    )
    return RuleOutcome(findings=(finding,), checks=(Check(CRITERION, status, note, evidence, READS),))


def trial_table(trials: tuple[Trial, ...], now: datetime) -> tuple[str, ...]:
    """Markdown table of every trial and why it does or does not count."""
    if not trials:
        return ("No antidepressant trials found in the medication history.",)
    lines = [
        "| Antidepressant | Class | Period | Counts | Why |",
        "|---|---|---|---|---|",
    ]
    for t in trials:
        p = t.period
        end = "ongoing" if p.end is None or p.end >= now else day(p.end)
        if t.same_class_as:
            verdict = "no"
            repeat = (
                "same antidepressant as a trial already counted"
                if t.same_class_as == p.ingredient
                else f"same mechanism class as {t.same_class_as} ({t.class_key})"
            )
            why = [*t.reasons, repeat]
        else:
            verdict = ("yes, unverified" if t.unverified else "yes") if t.counts else "no"
            why = list(t.reasons)
        why.extend(t.unverified)
        if p.recognition.value == "name":
            why.append("recognised by name only")
        lines.append(
            f"| {p.ingredient} | {p.drug_class or 'unknown'} | {day(p.start)} to {end} | {verdict} | {'; '.join(why)} |"
        )
    return tuple(lines)


RULES: tuple[OrderRule, ...] = (trd_rule,)
