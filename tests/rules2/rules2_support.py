"""Builders for the Rules II tests: typed records and orders, and a runner for the section 4-7 rules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Dose, DoseUnit, Drug, InfusionRate, MedicationOrder, OrderStage, Route
from cds_service.record import kinds
from cds_service.record.model import (
    Administration,
    BodyWeight,
    Code,
    ConditionFact,
    Instrument,
    PatientFacts,
    PatientRecord,
    Recognition,
    SeverityScore,
)
from cds_service.record.units import LB_AV_KG
from cds_service.rules import course_review, dose_esketamine, dose_iv, indication_evidence
from cds_service.rules.findings import Check, Finding, MissingItem

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
MY_RULES = (*dose_iv.RULES, *dose_esketamine.RULES, *course_review.RULES, *indication_evidence.RULES)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


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


def record(
    *,
    weights: Iterable[BodyWeight] = (),
    birth: date | None = date(1980, 1, 1),
    conditions: Iterable[ConditionFact] = (DEPRESSION,),
    administrations: Iterable[Administration] = (),
    scores: Iterable[SeverityScore] = (),
    available: frozenset[str] = kinds.ALL,
) -> PatientRecord:
    return PatientRecord(
        patient=PatientFacts(birth, "female"),
        conditions=tuple(conditions),
        weights=tuple(sorted(weights, key=lambda w: w.when or NOW, reverse=True)),
        administrations=tuple(administrations),
        scores=tuple(sorted(scores, key=lambda s: s.when or NOW, reverse=True)),
        available=available,
    )


def given(
    n: int, *, start_days_ago: float = 30, every: float = 3.5, drug: str = "ketamine", mg: float | None = None
) -> list[Administration]:
    """``n`` completed administrations, the first ``start_days_ago`` days ago, then every ``every`` days."""
    return [Administration(f"{drug}-{start_days_ago - i * every:g}", days_ago(start_days_ago - i * every), drug, mg)
            for i in range(n)]


def phq9(value: float, when_days_ago: float, sid: str | None = None) -> SeverityScore:
    return SeverityScore(sid or f"s{when_days_ago:g}", days_ago(when_days_ago), Instrument.PHQ9, value)


def iv_order(
    dose: float | None = 35,
    unit: DoseUnit = DoseUnit.MG,
    *,
    minutes: float | None = 40,
    per_week: float | None = 2,
    rate: InfusionRate | None = None,
    stage: OrderStage = OrderStage.SIGN,
    route: Route = Route.INTRAVENOUS,
    problems: tuple[str, ...] = (),
    reason: tuple[Code, ...] = (),
    reason_text: str | None = None,
) -> MedicationOrder:
    written = None if dose is None else f"{dose:g} {unit.value}"
    return MedicationOrder(
        reference="MedicationRequest/ket-1", drug=Drug.KETAMINE, recognition=Recognition.CODE, route=route,
        status="draft",
        dose=Dose(dose, unit, written or "") if dose is not None else None, rate=rate,
        duration_minutes=minutes, frequency_per_week=per_week, reason_codes=reason, reason_text=reason_text,
        problems=problems, stage=stage,
    )


def esk_order(dose: float | None = 56, *, unit: DoseUnit = DoseUnit.MG, stage: OrderStage = OrderStage.SIGN,
              route: Route = Route.INTRANASAL, per_week: float | None = 2,
              problems: tuple[str, ...] = ()) -> MedicationOrder:
    return MedicationOrder(
        reference="MedicationRequest/esk-1", drug=Drug.ESKETAMINE, recognition=Recognition.CODE, route=route,
        status="draft", dose=Dose(dose, unit, f"{dose:g} {unit.value}") if dose is not None else None, rate=None,
        duration_minutes=None, frequency_per_week=per_week, reason_codes=(), reason_text=None, stage=stage,
        problems=problems,
    )


def run(rec: PatientRecord, order: MedicationOrder, kb: Knowledge) -> tuple[list[Finding], list[Check]]:
    """Run the section 4-7 rules; every finding's card text must render under 140 characters."""
    findings, checks, _missing = run_all(rec, order, kb)
    return findings, checks


def run_all(
    rec: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime = NOW
) -> tuple[list[Finding], list[Check], list[MissingItem]]:
    """``run`` with the items for the pre-dose-data-missing card."""
    findings: list[Finding] = []
    checks: list[Check] = []
    missing: list[MissingItem] = []
    for rule in MY_RULES:
        outcome = rule(rec, order, kb, now)
        findings.extend(outcome.findings)
        checks.extend(outcome.checks)
        missing.extend(outcome.missing)
    for f in findings:
        render_summary(f, kb)
    return findings, checks, missing


def check(checks: Iterable[Check], criterion: str) -> Check:
    (found,) = [c for c in checks if c.criterion == criterion]
    return found


def render_summary(finding: Finding, kb: Knowledge) -> str:
    text = kb.topics[finding.topic].variants[finding.variant]
    assert text.indicator == finding.indicator.value, (finding.topic, finding.variant)
    summary = text.summary.format_map(dict(finding.facts))
    assert len(summary) < 140, summary
    text.rationale.format_map(dict(finding.facts))
    return summary


def topics(findings: Iterable[Finding]) -> set[str]:
    return {f.topic for f in findings}


def by_topic(findings: Iterable[Finding], topic: str) -> Finding:
    hits = [f for f in findings if f.topic == topic]
    assert len(hits) == 1, (topic, hits)
    return hits[0]
