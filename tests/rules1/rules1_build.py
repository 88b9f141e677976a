"""Builders of typed patient facts and orders for the Rules I tests (no FHIR JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cds_service.order.model import Drug, MedicationOrder, Route
from cds_service.record import kinds
from cds_service.record.model import (
    BloodPressure,
    Code,
    ConditionFact,
    DataGap,
    ExposurePeriod,
    Instrument,
    MedicationUse,
    PatientFacts,
    PatientRecord,
    PregnancyTest,
    Recognition,
    SeverityScore,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
CLASSES = {
    "sertraline": "SSRI",
    "fluoxetine": "SSRI",
    "escitalopram": "SSRI",
    "venlafaxine": "SNRI",
    "bupropion": "NDRI",
    "mirtazapine": "NaSSA",
    "lithium": "mood stabiliser",
    "valproate": "mood stabiliser",
    "lamotrigine": "anticonvulsant mood stabiliser",
    "quetiapine": "second-generation antipsychotic",
}
ROLES = {
    "lithium": "mood-stabilizer-standard",
    "valproate": "mood-stabilizer-standard",
    "lamotrigine": "mood-stabilizer-other",
    "quetiapine": "mood-stabilizer-other",
}


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def cond(
    cid: str,
    *categories: str,
    status: str | None = "active",
    verification: str | None = None,
    label: str | None = None,
    recognition: Recognition = Recognition.CODE,
) -> ConditionFact:
    return ConditionFact(
        resource_id=cid,
        codes=(),
        text=label or f"{categories[0] if categories else 'other'} condition",
        clinical_status=status,
        verification_status=verification,
        onset=days_ago(400),
        abatement=None,
        recorded=days_ago(400),
        categories=frozenset(categories),
        recognition=recognition,
    )


def use(
    ingredient: str,
    start: datetime | None,
    end: datetime | None,
    dose: float | None,
    *,
    rid: str | None = None,
    status: str = "completed",
    recognition: Recognition = Recognition.CODE,
) -> MedicationUse:
    return MedicationUse(
        resource_type="MedicationStatement",
        resource_id=rid or f"ms-{ingredient}",
        ingredient=ingredient,
        status=status,
        start=start,
        end=end,
        ongoing=end is None,
        daily_dose_mg=dose,
        recognition=recognition,
    )


def period(
    ingredient: str,
    start: datetime | None,
    end: datetime | None = None,
    dose: float | None = 100.0,
    *,
    uses: Iterable[MedicationUse] | None = None,
    drug_class: str | None = "",
    role: str | None = None,
) -> ExposurePeriod:
    the_uses = tuple(uses) if uses is not None else (use(ingredient, start, end, dose),)
    return ExposurePeriod(
        ingredient=ingredient,
        drug_class=CLASSES.get(ingredient) if drug_class == "" else drug_class,
        roles=frozenset({role or ROLES.get(ingredient, "antidepressant")}),
        start=start,
        end=end,
        ongoing=end is None,
        uses=the_uses,
    )


def score(
    value: float, when: datetime | None, instrument: Instrument = Instrument.PHQ9, sid: str = "s"
) -> SeverityScore:
    return SeverityScore(resource_id=f"{sid}-{value:g}", when=when, instrument=instrument, value=value)


def bp(systolic: float | None, diastolic: float | None, when: datetime | None = None) -> BloodPressure:
    return BloodPressure("bp1", when if when is not None else days_ago(2), systolic, diastolic)


def hcg(positive: bool | None, when: datetime) -> PregnancyTest:
    return PregnancyTest("hcg1", when, positive)


def record(
    *,
    conditions: Iterable[ConditionFact] = (),
    exposures: Iterable[ExposurePeriod] = (),
    scores: Iterable[SeverityScore] = (),
    bps: Iterable[BloodPressure] = (),
    tests: Iterable[PregnancyTest] = (),
    gaps: Iterable[DataGap] = (),
    available: frozenset[str] = kinds.ALL,
    depressed: bool = True,
    **kw: object,
) -> PatientRecord:
    """A record; ``depressed`` adds an active depression condition (the usual indication)."""
    conds = tuple(conditions)
    if depressed:
        conds = (cond("dep", "depression", label="Major depressive disorder, recurrent"), *conds)
    exps = tuple(exposures)
    return PatientRecord(
        patient=PatientFacts(birth_date=None, gender=None),
        conditions=conds,
        medication_uses=tuple(u for e in exps for u in e.uses),
        exposures=exps,
        blood_pressures=tuple(sorted(bps, key=lambda b: b.when or NOW, reverse=True)),
        scores=tuple(sorted(scores, key=lambda s: s.when or NOW, reverse=True)),
        pregnancy_tests=tuple(tests),
        data_gaps=tuple(gaps),
        available=available,
        **kw,  # type: ignore[arg-type]
    )


def order(
    drug: Drug = Drug.KETAMINE,
    route: Route = Route.INTRAVENOUS,
    *,
    reasons: Iterable[tuple[str, str]] = (),
    reason_text: str | None = None,
    reason_references: tuple[str, ...] = (),
    recognition: Recognition = Recognition.CODE,
) -> MedicationOrder:
    return MedicationOrder(
        reference="MedicationRequest/draft-1",
        drug=drug,
        recognition=recognition,
        route=route,
        status="draft",
        dose=None,
        rate=None,
        duration_minutes=None,
        frequency_per_week=None,
        reason_codes=tuple(Code(system, code) for system, code in reasons),
        reason_text=reason_text,
        reason_references=reason_references,
    )


def good_trials() -> tuple[ExposurePeriod, ...]:
    """Two adequate failed trials of different classes, each documented by PHQ-9 scores."""
    return (
        period("sertraline", days_ago(300), days_ago(200), 100),
        period("venlafaxine", days_ago(180), None, 150),
    )


def good_scores() -> tuple[SeverityScore, ...]:
    return (
        score(20, days_ago(305), sid="b1"),
        score(19, days_ago(205), sid="o1"),
        score(20, days_ago(182), sid="b2"),
        score(18, days_ago(3), sid="o2"),
    )
