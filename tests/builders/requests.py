"""FHIR JSON and CDS Hooks request builders of the protocol, pipeline and web tests."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from cds_service.config import Settings

FHIR = "https://fhir.example.org/r4"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
PATIENT_ID = "pat-1"


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "auth_enabled": False,
        "fhir_server_allowlist": (FHIR,),
        "database_url": "sqlite://",
        "public_base_url": "https://cds.example.org",
    }
    base.update(overrides)
    return Settings(**base)


def ketamine_order(order_id: str | None = "ket-1", *, dose_mg: float = 35) -> dict[str, Any]:
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6130", "display": "ketamine"}]},
        "dosageInstruction": [
            {
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008",
                                      "display": "Intravenous route"}]},
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg",
                                                  "system": "http://unitsofmeasure.org", "code": "mg"}}],
                "timing": {"repeat": {"duration": 40, "durationUnit": "min"}},
            }
        ],
    }
    if order_id:
        order["id"] = order_id
    return order


def other_order(order_id: str = "amox-1") -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "723", "display": "amoxicillin"}]},
    }


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1980-04-02", "gender": "female"}


def condition(code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": f"c-{code}", "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": ICD, "code": code}]}, "recordedDate": "2025-01-01",
    }  # fmt: skip


def blood_pressure(rid: str, when: datetime, systolic: int = 128, diastolic: int = 82) -> dict[str, Any]:
    def part(code: str, value: int) -> dict[str, Any]:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                                  "code": "mm[Hg]"}}  # fmt: skip

    return {
        "resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "effectiveDateTime": when.isoformat().replace("+00:00", "Z"),
        "component": [part("8480-6", systolic), part("8462-4", diastolic)],
    }  # fmt: skip


def full_prefetch() -> dict[str, Any]:
    return {
        "patient": patient(),
        "conditions": bundle(),
        "medicationRequests": bundle(),
        "medicationStatements": bundle(),
        "bloodPressure": bundle(),
        "bodyWeight": bundle(),
        "depressionScores": bundle(),
        "depressionScoresByCode": bundle(),
        "pregnancyTests": bundle(),
        "administrations": bundle(),
        "allergies": bundle(),
        "lactation": bundle(),
    }


def hook_request(
    hook: str = "order-sign",
    *,
    orders: list[dict[str, Any]] | None = None,
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = None,
    token: str | None = None,
    selections: list[str] | None = None,
) -> dict[str, Any]:
    orders = [ketamine_order()] if orders is None else orders
    context: dict[str, Any] = {"userId": "Practitioner/doc-1", "patientId": PATIENT_ID}
    if hook != "patient-view":  # patient-view has no draft orders
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": copy.deepcopy(o)} for o in orders]}  # fmt: skip
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [
            f"MedicationRequest/{o['id']}" for o in orders[:1] if o.get("id")
        ]
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "ketamine-cds",
                                     "patient": PATIENT_ID}
    return body


def service_for(hook: str) -> str:
    return {"order-select": "ketamine-order-select", "patient-view": "ketamine-patient-view"}.get(
        hook, "ketamine-order-sign"
    )
