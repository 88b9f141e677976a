"""Section 11 of clinical-rules.md: patient-view, the chart opened with no order drafted
(card texts: ``topics/patient_view.yaml``). Both cards are info; patient-view never warns.

``course-status``: one card per ketamine or esketamine course under way (``rules/course.py``, the one course
definition): its sessions, the latest score against the pre-course baseline, response
(``course.response_reduction_pct``) or remission (the instrument's line), what the sources say comes next, and
what is due before the next session (a score within ``severity.lookback_days``, a blood pressure).

``trd-candidate``: an active depressive disorder, the treatment-resistance criteria of §1 met (``rules/trd.py``,
distinct classes as for IV ketamine), no ketamine, esketamine or ECT within
``patient_view.prior_treatment_days``, and no critical finding of §2 or §3: the order rules of those sections
(``engine.SAFETY_RULES``) are asked about an order of either drug (``considered_order``), so a contraindication
is defined once. Off when ``patient_view.trd_candidate`` is false (a deployment's switch).

Both are for a patient with an active depressive disorder on the problem list (``depressive_disorder``): the
service's screen asks it of the conditions alone, so every other chart costs the conditions search only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder, Route
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import Evidence, Instrument, PatientRecord, Recognition
from cds_service.rules import pre_dose, severity
from cds_service.rules.contraindications import latest_blood_pressure
from cds_service.rules.course import Course, courses_under_way
from cds_service.rules.course_review import acute_run
from cds_service.rules.engine import SAFETY_RULES, Evaluation, RuleSet
from cds_service.rules.findings import (
    EMPTY,
    CreateAssessment,
    Finding,
    Indicator,
    Patient,
    PatientRule,
    RuleOutcome,
    SuggestionIntent,
)
from cds_service.rules.indication import Indication, compose_names, data_problem, day, determine_indication
from cds_service.rules.trd import Trial, assess_trials, trial_table

COURSE_STATUS = "course-status"
TRD_CANDIDATE = "trd-candidate"

REMISSION = {
    Instrument.PHQ9: "course.remission_phq9",
    Instrument.MADRS: "course.remission_madrs",
    Instrument.HAMD: "course.remission_hamd",
}


# ---------------------------------------------------------------- who the service speaks about


def considered_order(drug: Drug) -> MedicationOrder:
    """An order of ``drug`` with nothing else said: what the order rules would be asked if it were drafted now.

    Patient-view asks the order rules about the patient through it (the indication from the problem list, the
    critical findings of §2-3), never through a second definition of theirs.
    """
    route = Route.INTRAVENOUS if drug is Drug.KETAMINE else Route.INTRANASAL
    return MedicationOrder(None, drug, Recognition.CODE, route, None, None, None, None, None, (), None)


def depressive_disorder(record: PatientRecord, kb: Knowledge, now: datetime) -> Indication | None:
    """The active depressive disorder (unipolar or bipolar depression) of the problem list; None without one."""
    indication = determine_indication(record, considered_order(Drug.KETAMINE), kb, now)
    return indication if indication.is_depression else None


def has_depressive_disorder(record: PatientRecord, kb: Knowledge, now: datetime) -> bool:
    """The service's screen, asked of a record built from the conditions alone."""
    return depressive_disorder(record, kb, now) is not None


# ---------------------------------------------------------------- course-status


def course_status(record: PatientRecord, patient: Patient, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``course-status``: one card per course under way, for a patient with a depressive disorder; when no
    course is found and the administrations could not be read completely, one card that says so."""
    if depressive_disorder(record, kb, now) is None:
        return EMPTY
    courses = courses_under_way(record, kb, now)
    if courses:
        return RuleOutcome(findings=tuple(_course_card(record, course, kb, now) for course in courses))
    problem = data_problem(record, kinds.ADMINISTRATIONS)
    if problem is None:
        return EMPTY
    line = f"- Ketamine and esketamine given: could not be read completely ({problem})"
    return RuleOutcome(findings=(Finding(COURSE_STATUS, Indicator.INFO, {}, (line,), variant="unchecked"),))


def _course_card(record: PatientRecord, course: Course, kb: Knowledge, now: datetime) -> Finding:
    ketamine = course.drug == Drug.KETAMINE.value
    noun = "infusion" if ketamine else "session"
    facts = {
        "drug": "IV ketamine" if ketamine else "Esketamine",
        "sessions": f"{course.sessions} {noun}{'s' if course.sessions != 1 else ''}",
        "since": day(course.start),
    }
    variant, score_line, scores = _response(record, course, kb, facts)
    detail = [
        f"- Sessions ({'intravenous' if ketamine else 'intranasal'}): {_dates(course)}",
        f"- Score: {score_line}",
        f"- Next: {_next_step(course, kb, now, variant)}",
    ]
    due, suggestions = _due(record, kb, now)
    detail.append(f"- Before the next session: {due}")
    sessions = tuple(a.evidence() for a in course.administrations)
    return Finding(
        COURSE_STATUS,
        Indicator.INFO,
        facts,
        tuple(detail),
        (*sessions[-1:], *scores),
        suggestions,
        variant=variant,
        audit=sessions,
    )


def _response(
    record: PatientRecord, course: Course, kb: Knowledge, facts: dict[str, str]
) -> tuple[str, str, tuple[Evidence, ...]]:
    """(variant, the score line, the scores shown) of the course; fills the facts the variant's summary names."""
    baseline = course.baseline
    if baseline is None or baseline.value <= 0:
        days = fmt(kb.number("course.baseline_days"))
        facts["reason"] = f"no score in the {days} days before the first session"
        return (
            "unjudged",
            f"no depression score in the {days} days before the first session: response cannot be judged",
            (),
        )
    after = course.scores_since_start(record)
    if not after:
        facts["reason"] = f"no {baseline.instrument.value} since the first session"
        return (
            "unjudged",
            f"pre-course {severity.shown(baseline)}; none since the first session",
            (baseline.evidence(),),
        )
    latest = after[0]
    reduction = (baseline.value - latest.value) / baseline.value * 100
    change = f"{fmt(abs(round(reduction)))}% {'lower' if reduction >= 0 else 'higher'}"
    pct = kb.number("course.response_reduction_pct")
    line = kb.number(REMISSION[latest.instrument])
    facts.update(
        instrument=baseline.instrument.value,
        baseline=fmt(baseline.value),
        latest=fmt(latest.value),
        change=change,
        pct=fmt(pct),
        remission=fmt(line),
    )
    if latest.value <= line:
        variant, verdict = "remission", f"remission ({latest.instrument.value} {fmt(line)} or lower)"
    elif reduction >= pct - 1e-9:
        variant, verdict = "response", f"response ({fmt(pct)}% lower or more)"
    else:
        variant, verdict = "no-response", f"no {fmt(pct)}% response yet"
    text = f"pre-course {severity.shown(baseline)}, latest {severity.shown(latest)}: {change}, {verdict}"
    return variant, text, (baseline.evidence(), latest.evidence())


def _dates(course: Course) -> str:
    return ", ".join(day(a.when) for a in course.administrations)


def _next_step(course: Course, kb: Knowledge, now: datetime, variant: str) -> str:
    """What the sources say comes next, at this stage of the course."""
    if course.drug == Drug.ESKETAMINE.value:
        return _next_esketamine(course, kb, now, variant)
    judged_from = round(kb.number("course.nonresponse_min_infusions"))
    acute_max = fmt(kb.number("course.acute_course_max"))
    last = course.last_interval_days()
    if last is not None and last >= kb.number("course.maintenance_interval_days"):
        return ("maintenance: taper from every 5 days to every 3-4 weeks; without maintenance the benefit lasts "
                "days to a few weeks")  # fmt: skip
    run = len(acute_run(course, kb))
    if run >= kb.number("course.acute_course_max"):
        return f"the acute course of 4-{acute_max} infusions is complete: plan maintenance or stop"
    if run < judged_from:
        return (f"response is judged after {judged_from} infusions; the acute course is 4-{acute_max} infusions, "
                "twice or three times a week")  # fmt: skip
    if variant == "no-response":
        return (f"no response after {run} infusions: only about 20% of those without a response after two go on "
                "to remission; review whether to continue")  # fmt: skip
    return f"acute course, {run} of 4-{acute_max} infusions, twice or three times a week"


def _next_esketamine(course: Course, kb: Knowledge, now: datetime, variant: str) -> str:
    sessions = round(kb.number("esketamine.induction_sessions"))
    weeks = kb.number("esketamine.induction_weeks")
    week = course.week_of(now)
    if course.sessions < sessions and course.days_since_start(now) < weeks * 7:
        return (f"induction, twice a week in weeks 1-{fmt(weeks)} (session {course.sessions} of {sessions}); "
                "response is judged at the end of induction")  # fmt: skip
    if variant == "no-response":
        return "induction is over without a response: the label asks to review whether to continue"
    if week <= 2 * weeks:
        return f"week {week}: once a week in weeks {fmt(weeks + 1)}-{fmt(2 * weeks)}"
    return f"week {week}: every 1 or 2 weeks, the least frequent dosing that keeps the response"


def _due(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[str, tuple[SuggestionIntent, ...]]:
    """What is due before the next session: a depression score within ``severity.lookback_days``, a blood
    pressure (before every dose; the line says when none was taken within ``bp.lookback_days``)."""
    parts: list[str] = []
    suggestions: list[SuggestionIntent] = []
    score = severity.latest_score(record, kb, now)
    if score is None:
        older = severity.newest_score(record, now)
        shown = f" (the latest: {severity.shown(older)})" if older is not None else ""
        parts.append(f"a depression score, none in the last {fmt(kb.number('severity.lookback_days'))} days{shown}")
        suggestions.append(CreateAssessment("phq9"))
    else:
        parts.append(f"depression score up to date ({severity.shown(score)})")
    bp = latest_blood_pressure(record, kb, now)
    if bp is None:
        line = pre_dose.blood_pressure_missing(record, kb, now).line
        parts.append(f"a blood pressure ({line[:1].lower()}{line[1:]})")
        suggestions.append(CreateAssessment("vital-signs"))
    else:
        parts.append(
            f"a blood pressure on the day, as before every dose (the latest: {bp.evidence().value} on {day(bp.when)})"
        )
    return "; ".join(parts), tuple(suggestions)


# ---------------------------------------------------------------- trd-candidate


def trd_candidate(record: PatientRecord, patient: Patient, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``trd-candidate``: meets the §1 criteria, no ketamine, esketamine or ECT in the last year, nothing critical."""
    if not kb.flag("patient_view.trd_candidate"):
        return EMPTY
    indication = depressive_disorder(record, kb, now)
    if indication is None:
        return EMPTY
    required = round(kb.number("trd.min_adequate_trials"))
    trials = assess_trials(record, kb, now, distinct=kb.flag("trd.require_distinct_classes"))
    counted = [t for t in trials if t.counted]
    if _treated_recently(record, kb, now) or _critical(record, kb, now):
        return EMPTY
    if len(counted) < required:
        return _unchecked(record, trials, counted, required, now)
    facts = {"count": str(len(counted)), "trials": _trial_names(counted)}
    detail = [*trial_table(trials, now)]
    gaps = [p for kind in (kinds.ADMINISTRATIONS, kinds.PROCEDURES) if (p := data_problem(record, kind))]
    if gaps:
        detail.append(f"- Earlier ketamine, esketamine or ECT could not be checked completely: {'; '.join(gaps)}")
    evidence = tuple(dict.fromkeys((*indication.evidence, *(e for t in counted for e in t.evidence))))
    verified = [t for t in counted if not t.unverified]
    variant = "default" if len(verified) >= required else "unverified"
    return RuleOutcome(
        findings=(Finding(TRD_CANDIDATE, Indicator.INFO, facts, tuple(detail), evidence, variant=variant),)
    )


def _unchecked(
    record: PatientRecord, trials: tuple[Trial, ...], counted: Sequence[Trial], required: int, now: datetime
) -> RuleOutcome:
    """Fewer trials than the criteria ask, found in a medication history or scores that could not be read
    completely: the trials that could not be read may be the missing ones, so the card says so (no card when
    both were read completely)."""
    problems = {what: p for kind, what in _TRIAL_DATA if (p := data_problem(record, kind))}
    if not problems:
        return EMPTY
    facts = {"what": " and ".join(problems), "found": str(len(counted)), "required": str(required)}
    detail = [*(f"- {what.capitalize()}: could not be read completely ({p})" for what, p in problems.items()),
              *trial_table(trials, now)]  # fmt: skip
    evidence = tuple(dict.fromkeys(e for t in counted for e in t.evidence))
    finding = Finding(TRD_CANDIDATE, Indicator.INFO, facts, tuple(detail), evidence, variant="unchecked")
    return RuleOutcome(findings=(finding,))


# What the trials are read from, in a prescriber's words.
_TRIAL_DATA = ((kinds.MEDICATIONS, "the medication history"), (kinds.SCORES, "the depression scores"))


def _trial_names(counted: Sequence[Trial]) -> str:
    return compose_names([t.period.ingredient for t in counted], 40, "antidepressants")


def _treated_recently(record: PatientRecord, kb: Knowledge, now: datetime) -> bool:
    """Ketamine or esketamine given or prescribed, or ECT, within ``patient_view.prior_treatment_days``."""
    since = now - timedelta(days=kb.number("patient_view.prior_treatment_days"))
    if any(a.when is None or a.when >= since for a in record.administrations):
        return True
    drugs = {Drug.KETAMINE.value, Drug.ESKETAMINE.value}
    for period in record.exposures:
        if period.ingredient in drugs and (period.ongoing or period.end is None or period.end >= since):
            return True
    return any(p.when is None or p.when >= since for p in record.procedures_in("ect"))


def _critical(record: PatientRecord, kb: Knowledge, now: datetime) -> bool:
    """A critical finding of §2 or §3 for an order of either drug."""
    return any(
        finding.indicator is Indicator.CRITICAL
        for drug in Drug
        for rule in SAFETY_RULES
        for finding in rule(record, considered_order(drug), kb, now).findings
    )


# ---------------------------------------------------------------- the rule set


def _conclude(
    record: PatientRecord, patient: Patient, kb: Knowledge, now: datetime, outcomes: Sequence[RuleOutcome]
) -> Evaluation:
    """The cards in the rules' order (course status first); no summary, no checklist."""
    return Evaluation(findings=tuple(f for outcome in outcomes for f in outcome.findings), checks=())


RULES: tuple[PatientRule, ...] = (course_status, trd_candidate)
PATIENT_VIEW_RULES: RuleSet[Patient] = RuleSet("patient-view", RULES, _conclude)
