"""Minimal CDS Hooks request bodies for the reliability tests."""

from __future__ import annotations

import uuid
from typing import Any

KETAMINE_DRAFT: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "draft-ketamine-1",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "medicationCodeableConcept": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130", "display": "ketamine"}],
        "text": "ketamine",
    },
    "dosageInstruction": [
        {
            "route": {
                "coding": [{"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}]
            },
            "timing": {"repeat": {"duration": 40, "durationUnit": "min"}},
            "doseAndRate": [
                {"doseQuantity": {"value": 35, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
            ],
        }
    ],
}

SERTRALINE_DRAFT: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "draft-sertraline-1",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "medicationCodeableConcept": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "312941",
                "display": "sertraline 50 MG Oral Tablet",
            }
        ]
    },
}


def order_sign(
    draft: dict[str, Any], *, fhir_server: str | None = None, prefetch: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/example",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
        },
    }
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body
