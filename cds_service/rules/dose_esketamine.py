"""Section 5 of clinical-rules.md: intranasal esketamine dose, first dose and frequency.

Bands on the mg per session (``esketamine.*`` thresholds): above ``max_dose_mg`` -> ``esketamine-dose-high``
(critical); below ``min_effective_mg`` -> ``esketamine-dose-low`` (warning), except exactly the labelled
``start_dose_mg`` for a patient aged ``elderly_age`` or more (info, variant ``elderly-start``).

``esketamine-first-dose``: the order is the first session of a course (no esketamine given within
``course.gap_days``; ``rules/course.py``) and more than ``first_dose_mg`` is ordered; not for the
suicidal-ideation indication, which starts at 84 mg.

``frequency-above-protocol`` (esketamine variants): more than ``induction_max_per_week`` sessions a week in the
course's weeks 1 to ``induction_weeks``, more than ``maintenance_max_per_week`` from the next week on.

A dose the service cannot read (or a mg/kg dose: esketamine is dosed per session) is never guessed: on
order-sign it is an item of the ``pre-dose-data-missing`` card. The REMS requirements are a line of the summary's
monitoring section (``esketamine-rems`` is retired as a card).
"""

from __future__ import annotations

from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import DoseUnit, Drug, MedicationOrder, OrderStage
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.model import PatientRecord
from cds_service.rules.course import Course, course_under_way
from cds_service.rules.dosing import EPSILON
from cds_service.rules.findings import (
    EMPTY,
    Check,
    CheckStatus,
    DeleteOrder,
    Finding,
    Indicator,
    MissingItem,
    OrderRule,
    RuleOutcome,
)
from cds_service.rules.indication import day, suicidal_ideation

DOSE = "Dose"
SCHEDULE = "Esketamine schedule"
ESKETAMINE = Drug.ESKETAMINE.value


def _course(record: PatientRecord, kb: Knowledge, now: datetime) -> Course | None:
    return course_under_way(record, kb, now, ESKETAMINE)


def esketamine_dose(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``esketamine-dose-low`` / ``esketamine-dose-high`` and the summary's Dose line."""
    if order.drug is not Drug.ESKETAMINE:
        return EMPTY
    if not order.is_intranasal_esketamine:
        note = f"{order.route.value} route: these rules cover IV ketamine and intranasal esketamine only"
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.NOT_APPLICABLE, note),))
    unreadable = _unreadable(order)
    if unreadable is not None or order.dose is None:
        return _no_dose(order, unreadable or "no dose on the order")

    mg = order.dose.value
    age = record.patient.age_on(now.date())
    start = kb.number("esketamine.start_dose_mg")
    low = kb.number("esketamine.min_effective_mg")
    high = kb.number("esketamine.max_dose_mg")
    elderly = kb.number("esketamine.elderly_age")
    facts = {
        "dose_mg": fmt(mg),
        "ordered": order.dose.as_written,
        "start_mg": fmt(start),
        "min_mg": fmt(low),
        "max_mg": fmt(high),
        "elderly_age": fmt(elderly),
        "age": str(age) if age is not None else "not recorded",
    }
    detail = tuple(f"Order: {p}." for p in order.problems)
    finding: Finding | None = None
    if mg > high + EPSILON:
        finding = Finding("esketamine-dose-high", Indicator.CRITICAL, facts, detail, (), (DeleteOrder(),))
    elif mg < low - EPSILON:
        if abs(mg - start) <= EPSILON and age is not None and age >= elderly:
            finding = Finding("esketamine-dose-low", Indicator.INFO, facts, detail, variant="elderly-start")
        else:
            if abs(mg - start) <= EPSILON and age is None:
                detail = (*detail, f"Age not recorded: the {fmt(start)} mg start for patients aged "
                          f"{fmt(elderly)} or over could not be confirmed.")  # fmt: skip
            finding = Finding("esketamine-dose-low", Indicator.WARNING, facts, detail)
    note = f"{fmt(mg)} mg intranasal per session (labelled {fmt(low)}-{fmt(high)} mg"
    note += f"; {fmt(start)} mg start at {fmt(elderly)} or over)"
    if order.problems:
        note += "; " + "; ".join(order.problems)
    if finding is None or finding.indicator is Indicator.INFO:
        status = CheckStatus.MET
    else:
        status = CheckStatus.NOT_MET
        note += ": above the maximum" if finding.indicator is Indicator.CRITICAL else ": below the effective range"
    findings = (finding,) if finding is not None else ()
    return RuleOutcome(findings=findings, checks=(Check(DOSE, status, note),))


def _unreadable(order: MedicationOrder) -> str | None:
    """Why the order has no dose in mg per session (None: it has one)."""
    if order.dose is not None and order.dose.unit is DoseUnit.MG:
        return None
    notes = list(order.problems)
    if order.dose is not None and order.dose.unit is DoseUnit.MG_PER_KG:
        notes.append(f"'{order.dose.as_written}' is weight-based: esketamine is dosed in mg per session")
    if order.stage is OrderStage.SELECT and not notes:
        return "no dose entered yet"
    return "; ".join(notes) if notes else "no dose on the order"


def _no_dose(order: MedicationOrder, why: str) -> RuleOutcome:
    if order.stage is OrderStage.SELECT and why == "no dose entered yet":
        return RuleOutcome(checks=(Check(DOSE, CheckStatus.UNDOCUMENTED, why),))
    note = f"dose could not be read as mg per session ({why}): the dose checks were not done"
    item = MissingItem("order-dose", f"A dose in mg per session on this order ({why}): the 56-84 mg range and the "
                       "84 mg maximum were not checked", None, what="a dose in mg per session")  # fmt: skip
    return RuleOutcome(checks=(Check(DOSE, CheckStatus.UNDOCUMENTED, note),), missing=(item,))


def esketamine_first_dose(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``esketamine-first-dose``: more than the label's day-1 dose on the first session of a course."""
    if not order.is_intranasal_esketamine or order.dose is None or order.dose.unit is not DoseUnit.MG:
        return EMPTY
    course = _course(record, kb, now)
    first = kb.number("esketamine.first_dose_mg")
    if course is not None or order.dose.value <= first + EPSILON:
        return EMPTY
    if order.dose.value > kb.number("esketamine.max_dose_mg") + EPSILON:
        return EMPTY  # above the maximum: esketamine-dose-high says it, critically
    if suicidal_ideation(record, order, kb, now).current:
        return EMPTY  # the suicidal-ideation indication starts at 84 mg
    facts = {
        "dose_mg": fmt(order.dose.value),
        "first_mg": fmt(first),
        "weeks": fmt(kb.number("course.gap_days") / 7),
        "max_mg": fmt(kb.number("esketamine.max_dose_mg")),
    }
    return RuleOutcome(findings=(Finding("esketamine-first-dose", Indicator.WARNING, facts),))


def esketamine_schedule(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> RuleOutcome:
    """``frequency-above-protocol`` for esketamine (by course week) and the schedule's checklist line."""
    if not order.is_intranasal_esketamine:
        return EMPTY
    course = _course(record, kb, now)
    week = course.week_of(now) if course is not None else 1
    induction = week <= kb.number("esketamine.induction_weeks")
    limit = kb.number("esketamine.induction_max_per_week" if induction else "esketamine.maintenance_max_per_week")
    where = (f"session {course.sessions + 1} of the course that began on {day(course.start)}, week {week}"
             if course is not None else "first session of a course")  # fmt: skip
    reads = (kinds.ADMINISTRATIONS,)
    per_week = order.frequency_per_week
    if per_week is None:
        return RuleOutcome(checks=(Check(SCHEDULE, CheckStatus.MET, where, reads=reads),))
    weeks = kb.number("esketamine.induction_weeks")
    phase = f"in weeks 1-{fmt(weeks)}" if induction else f"from week {fmt(weeks + 1)}"
    note = f"{where}; {fmt(per_week)} sessions a week ordered (the label allows at most {fmt(limit)} a week {phase})"
    if per_week <= limit + EPSILON:
        return RuleOutcome(checks=(Check(SCHEDULE, CheckStatus.MET, note, reads=reads),))
    facts = {"per_week": fmt(per_week), "limit": fmt(limit), "week": str(week)}
    variant = "esketamine-induction" if induction else "esketamine-maintenance"
    finding = Finding("frequency-above-protocol", Indicator.WARNING, facts, variant=variant)
    return RuleOutcome(findings=(finding,), checks=(Check(SCHEDULE, CheckStatus.NOT_MET, note, reads=reads),))


RULES: tuple[OrderRule, ...] = (esketamine_dose, esketamine_first_dose, esketamine_schedule)
