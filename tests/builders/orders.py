"""Builders of typed draft orders (``MedicationOrder``, no FHIR JSON): the one set every rule test uses."""

from __future__ import annotations

from collections.abc import Iterable

from cds_service.order.model import Dose, DoseUnit, Drug, InfusionRate, MedicationOrder, OrderStage, Route
from cds_service.record.model import Code, Recognition


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
