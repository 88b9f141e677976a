"""Realistic, messy FHIR R4 JSON for the record tests (shapes from terminology.md §7 and real feeds)."""

from __future__ import annotations

from typing import Any

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LNC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NDC = "http://hl7.org/fhir/sid/ndc"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SUBJECT = {"reference": "Patient/p1"}

Resource = dict[str, Any]


def patient(**extra: Any) -> Resource:
    return {"resourceType": "Patient", "id": "p1", "birthDate": "1958-03-14", "gender": "female", **extra}


def condition(
    rid: str,
    system: str | None,
    code: str | None,
    display: str | None = None,
    *,
    clinical: str | None = "active",
    verification: str | None = None,
    text: str | None = None,
    **extra: Any,
) -> Resource:
    concept: dict[str, Any] = {}
    if system and code:
        coding: dict[str, Any] = {"system": system, "code": code}
        if display:
            coding["display"] = display
        concept["coding"] = [coding]
    if text:
        concept["text"] = text
    res: Resource = {"resourceType": "Condition", "id": rid, "subject": SUBJECT, "code": concept, **extra}
    if clinical:
        res["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": clinical}]}
    if verification:
        res["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": verification}]}
    return res


def rx_concept(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": RX, "code": code, "display": display}]}


def dosage(dose: float | None, unit: str | None, *, frequency: int = 1, period: float = 1, period_unit: str = "d"):
    d: dict[str, Any] = {"timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}}}
    if dose is not None:
        quantity: dict[str, Any] = {"value": dose}
        if unit:
            quantity.update({"unit": unit, "system": UCUM, "code": unit})
        d["doseAndRate"] = [{"doseQuantity": quantity}]
    return d


def statement(
    rid: str,
    medication: dict[str, Any],
    *,
    status: str = "completed",
    start: str | None = None,
    end: str | None = None,
    when: str | None = None,
    dosages: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Resource:
    res: Resource = {"resourceType": "MedicationStatement", "id": rid, "status": status, "subject": SUBJECT, **extra}
    res.update(medication)
    if start or end:
        res["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    if when:
        res["effectiveDateTime"] = when
    if dosages is not None:
        res["dosage"] = dosages
    return res


def request(
    rid: str,
    medication: dict[str, Any],
    *,
    status: str = "completed",
    authored: str | None = None,
    supply: tuple[float, str] | None = None,
    repeats: int | None = None,
    validity: tuple[str, str] | None = None,
    dosages: list[dict[str, Any]] | None = None,
    intent: str = "order",
    **extra: Any,
) -> Resource:
    res: Resource = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": intent,
        "subject": SUBJECT,
        **extra,
    }
    res.update(medication)
    if authored:
        res["authoredOn"] = authored
    dispense: dict[str, Any] = {}
    if supply:
        dispense["expectedSupplyDuration"] = {"value": supply[0], "unit": supply[1], "system": UCUM, "code": supply[1]}
    if repeats is not None:
        dispense["numberOfRepeatsAllowed"] = repeats
    if validity:
        dispense["validityPeriod"] = {"start": validity[0], "end": validity[1]}
    if dispense:
        res["dispenseRequest"] = dispense
    if dosages is not None:
        res["dosageInstruction"] = dosages
    return res


def observation(rid: str, code: str, when: str | None, *, status: str = "final", **value: Any) -> Resource:
    res: Resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": LNC, "code": code}]},
        "subject": SUBJECT,
        **value,
    }
    if when:
        res["effectiveDateTime"] = when
    return res


def mmhg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}


def bp_panel(rid: str, when: str, systolic: float, diastolic: float, *, code: str = "85354-9") -> Resource:
    return observation(
        rid,
        code,
        when,
        category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category"}]}],
        component=[
            {"code": {"coding": [{"system": LNC, "code": "8462-4"}]}, "valueQuantity": mmhg(diastolic)},
            {"code": {"coding": [{"system": LNC, "code": "8480-6"}]}, "valueQuantity": mmhg(systolic)},
        ],
    )


def weight(rid: str, when: str, value: float, unit: str, *, ucum: bool = True) -> Resource:
    quantity: dict[str, Any] = {"value": value, "unit": unit}
    if ucum:
        quantity.update({"system": UCUM, "code": unit})
    return observation(rid, "29463-7", when, valueQuantity=quantity)
