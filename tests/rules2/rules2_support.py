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
from cds_service.rules import course, dose_esketamine, dose_iv, indication_evidence
from cds_service.rules.findings import Check, Finding

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
MY_RULES = (*dose_iv.RULES, *dose_esketamine.RULES, *course.RULES, *indication_evidence.RULES)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def weight(kg: float | None = 70.0, *, lb: float | None = None, age_days: float = 5) -> BodyWeight:
    if lb is not None:
        return BodyWeight("w-lb", days_ago(age_days), lb * LB_AV_KG, f"{lb:g} [lb_av]")
    assert kg is not None
    return BodyWeight("w1", days_ago(age_days), kg, f"{kg:g} kg")


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


def given(n: int, *, start_days_ago: float = 30, every: float = 3.5, drug: str = "ketamine") -> list[Administration]:
    return [Administration(f"a{i}", days_ago(start_days_ago - i * every), drug) for i in range(n)]


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
              route: Route = Route.INTRANASAL) -> MedicationOrder:
    return MedicationOrder(
        reference="MedicationRequest/esk-1", drug=Drug.ESKETAMINE, recognition=Recognition.CODE, route=route,
        status="draft", dose=Dose(dose, unit, f"{dose:g} {unit.value}") if dose is not None else None, rate=None,
        duration_minutes=None, frequency_per_week=2, reason_codes=(), reason_text=None, stage=stage,
    )


def run(rec: PatientRecord, order: MedicationOrder, kb: Knowledge) -> tuple[list[Finding], list[Check]]:
    """Run the section 4-7 rules; every finding's card text must render under 140 characters."""
    findings: list[Finding] = []
    checks: list[Check] = []
    for rule in MY_RULES:
        outcome = rule(rec, order, kb, NOW)
        findings.extend(outcome.findings)
        checks.extend(outcome.checks)
    for f in findings:
        render_summary(f, kb)
    return findings, checks


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
