"""FHIR R4 JSON builders for end-to-end card scenarios (record builder -> rules -> rendered cards)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from cds_service.cards.render import render_cards
from cds_service.knowledge.model import Knowledge
from cds_service.order.model import OrderStage
from cds_service.order.parser import parse_order
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.rules.engine import evaluate
from tests.clock import NOW

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SUBJECT = {"reference": "Patient/p1"}
Resource = dict[str, Any]
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def _qty(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def patient(birth: str = "1980-01-01", gender: str = "female") -> Resource:
    return {"resourceType": "Patient", "id": "p1", "birthDate": birth, "gender": gender}


def condition(code: str, display: str, status: str = "active") -> Resource:
    return {
        "resourceType": "Condition", "id": _id("c"), "subject": SUBJECT, "recordedDate": ago(400)[:10],
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": status}]},
        "code": {"coding": [{"system": ICD, "code": code, "display": display}]},
    }  # fmt: skip


def _obs(code: str, days: float, **value: Any) -> Resource:
    return {"resourceType": "Observation", "id": _id("o"), "status": "final", "subject": SUBJECT,
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": ago(days), **value}  # fmt: skip


def phq9(value: int, days: float) -> Resource:
    return _obs("44261-6", days, valueInteger=value)


def bp(systolic: float, diastolic: float, days: float) -> Resource:
    return _obs("85354-9", days, component=[
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": _qty(systolic, "mm[Hg]")},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": _qty(diastolic, "mm[Hg]")},
    ])  # fmt: skip


def weight(kg: float, days: float) -> Resource:
    return _obs("29463-7", days, valueQuantity=_qty(kg, "kg"))


def hcg_positive(days: float) -> Resource:
    return _obs("2106-3", days, valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct",
                                                                  "code": "10828004"}]})  # fmt: skip


def _daily(mg: float) -> list[dict[str, Any]]:
    return [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
             "doseAndRate": [{"doseQuantity": _qty(mg, "mg")}]}]  # fmt: skip


def statement(rxcui: str, name: str, start: float, end: float | None, mg: float) -> Resource:
    period = {"start": ago(start)} | ({"end": ago(end)} if end is not None else {})
    return {"resourceType": "MedicationStatement", "id": _id("ms"), "subject": SUBJECT,
            "status": "completed" if end is not None else "active",
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": rxcui, "display": name}]},
            "effectivePeriod": period, "dosage": _daily(mg)}  # fmt: skip


def request(rxcui: str, name: str, authored: float, mg: float, status: str = "completed") -> Resource:
    """A MedicationRequest in the history with no supply duration (many EHR feeds)."""
    return {"resourceType": "MedicationRequest", "id": _id("mr"), "status": status, "intent": "order",
            "subject": SUBJECT, "authoredOn": ago(authored),
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": rxcui, "display": name}]},
            "dosageInstruction": _daily(mg)}  # fmt: skip


def administration(days: float) -> Resource:
    return {"resourceType": "MedicationAdministration", "id": _id("ma"), "status": "completed", "subject": SUBJECT,
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": "6130", "display": "ketamine"}]},
            "effectiveDateTime": ago(days)}  # fmt: skip


def iv_order(
    dose: dict[str, Any] | None = None, *, minutes: float | None = 40, per_week: int = 2,
    reason: tuple[str, str] | None = None, rate: dict[str, Any] | None = None,
) -> Resource:  # fmt: skip
    dose_and_rate: dict[str, Any] = {}
    if dose is not None:
        dose_and_rate["doseQuantity"] = dose
    if rate is not None:
        dose_and_rate["rateQuantity"] = rate
    repeat: dict[str, Any] = {"frequency": per_week, "period": 1, "periodUnit": "wk"}
    if minutes is not None:
        repeat |= {"duration": minutes, "durationUnit": "min"}
    order: Resource = {
        "resourceType": "MedicationRequest", "id": "draft1", "status": "draft", "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"coding": [{"system": RX, "code": "6130", "display": "ketamine"}]},
        "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]},
                               "timing": {"repeat": repeat},
                               "doseAndRate": [dose_and_rate] if dose_and_rate else []}],
    }  # fmt: skip
    if reason:
        order["reasonCode"] = [{"coding": [{"system": ICD, "code": reason[0], "display": reason[1]}]}]
    return order


def esketamine_order(mg: float) -> Resource:
    return {"resourceType": "MedicationRequest", "id": "draft1", "status": "draft", "intent": "order",
            "subject": SUBJECT,
            "medicationCodeableConcept": {"coding": [{"system": RX, "code": "2119365", "display": "esketamine"}]},
            "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "46713006"}]},
                                   "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
                                   "doseAndRate": [{"doseQuantity": _qty(mg, "mg")}]}]}  # fmt: skip


def eligible_trd() -> list[Resource]:
    """MDD; sertraline then venlafaxine failed (PHQ-9 documented); bupropion now; recent score, BP and weight."""
    return [
        patient(), condition("F33.2", "Major depressive disorder, recurrent severe"),
        statement("36437", "sertraline", 500, 400, 100), phq9(20, 505), phq9(19, 420),
        statement("39786", "venlafaxine", 380, 300, 150), phq9(19, 385), phq9(18, 305),
        statement("42347", "bupropion", 200, None, 300),
        phq9(19, 10), bp(122, 78, 7), weight(80, 7),
    ]  # fmt: skip


def cards(
    kb: Knowledge, resources: Iterable[Resource], order: Resource, stage: OrderStage = OrderStage.SIGN
) -> list[dict[str, Any]]:
    record = build_record(list(resources), kb, available=kinds.ALL)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
    parsed = parse_order(order, bundle, kb, stage)
    evaluation = evaluate(record, parsed, kb, NOW)
    return render_cards(evaluation, order, "MedicationRequest/draft1", kb, base_url="https://cds.example.org",
                        patient_id="p1")  # fmt: skip


def topics(rendered: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["source"]["topic"]["code"], c["indicator"]) for c in rendered]
