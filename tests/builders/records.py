"""Builders of typed patient facts and records (no FHIR JSON): the one set every rule and card test uses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from cds_service.record import kinds
from cds_service.record.model import (
    Administration,
    BloodPressure,
    BodyWeight,
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
from cds_service.record.units import LB_AV_KG
from tests.clock import NOW, days_ago

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
ADULT_BIRTH = date(1980, 1, 1)  # a birth date that makes every rule's age checks pass
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
    depressed: bool = True,
    exposures: Iterable[ExposurePeriod] = (),
    scores: Iterable[SeverityScore] = (),
    bps: Iterable[BloodPressure] = (),
    weights: Iterable[BodyWeight] = (),
    tests: Iterable[PregnancyTest] = (),
    administrations: Iterable[Administration] = (),
    gaps: Iterable[DataGap] = (),
    birth: date | None = None,
    gender: str | None = None,
    available: frozenset[str] = kinds.ALL,
    **kw: object,
) -> PatientRecord:
    """A record of typed facts. ``depressed`` adds an active depression condition (the usual indication) before
    ``conditions``; readings are sorted newest first, as the record builder keeps them."""
    conds = tuple(conditions)
    if depressed:
        conds = (cond("dep", "depression", label="Major depressive disorder, recurrent"), *conds)
    exps = tuple(exposures)
    return PatientRecord(
        patient=PatientFacts(birth_date=birth, gender=gender),
        conditions=conds,
        medication_uses=tuple(u for e in exps for u in e.uses),
        exposures=exps,
        blood_pressures=tuple(sorted(bps, key=lambda b: b.when or NOW, reverse=True)),
        weights=tuple(sorted(weights, key=lambda w: w.when or NOW, reverse=True)),
        scores=tuple(sorted(scores, key=lambda s: s.when or NOW, reverse=True)),
        pregnancy_tests=tuple(tests),
        administrations=tuple(administrations),
        data_gaps=tuple(gaps),
        available=available,
        **kw,  # type: ignore[arg-type]
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


def weight(
    kg: float | None = 70.0, *, lb: float | None = None, age_days: float = 5, plausible: bool | None = None
) -> BodyWeight:
    """A body weight; ``plausible`` defaults to what the record flags (30-300 kg, clinical-rules.md §10)."""
    if lb is not None:
        kg_lb = lb * LB_AV_KG
        return BodyWeight(f"w-lb-{age_days:g}", days_ago(age_days), kg_lb, f"{lb:g} [lb_av]", _flag(kg_lb, plausible))
    assert kg is not None
    return BodyWeight(f"w-{age_days:g}", days_ago(age_days), kg, f"{kg:g} kg", _flag(kg, plausible))


def _flag(kg: float, plausible: bool | None) -> bool:
    return 30 <= kg <= 300 if plausible is None else plausible


def condition(cid: str, category: str, code: str, *, status: str = "active") -> ConditionFact:
    return ConditionFact(
        resource_id=cid, codes=(Code(ICD, code),), text=None, clinical_status=status, verification_status=None,
        onset=days_ago(400), abatement=None, recorded=days_ago(400), categories=frozenset({category}),
    )


DEPRESSION = condition("c-mdd", "depression", "F33.2")


def given(
    n: int, *, start_days_ago: float = 30, every: float = 3.5, drug: str = "ketamine", mg: float | None = None
) -> list[Administration]:
    """``n`` completed administrations, the first ``start_days_ago`` days ago, then every ``every`` days."""
    return [Administration(f"{drug}-{start_days_ago - i * every:g}", days_ago(start_days_ago - i * every), drug, mg)
            for i in range(n)]


def phq9(value: float, when_days_ago: float, sid: str | None = None) -> SeverityScore:
    return SeverityScore(sid or f"s{when_days_ago:g}", days_ago(when_days_ago), Instrument.PHQ9, value)
