"""Synthetic CDS Hooks requests for the benchmark (generated at run time; no real patient data).

Five workloads (see benchmarks/README.md):
  1. ``other-drug-heavy-prefetch``: order-sign for sertraline carrying the heavy patient's prefetch.
  2. ``ketamine-typical``: IV ketamine order-sign, ~100 prefetched resources.
  3. ``ketamine-heavy``: IV ketamine order-sign, 3,000+ resources (years of vitals and medication history).
  4. ``ketamine-fhir-fallback``: the typical patient with no prefetch: the service fetches every key from a
     local FHIR stub (``benchmarks.fhir_stub``) that answers after a fixed delay.
  5. ``patient-view-not-depressed-heavy``: patient-view (the chart opened) for the heavy patient without a
     depressive disorder, carrying the service's whole prefetch: the common patient-view case.

Dates are relative to the generation time so that recency windows (30/90 days) see recent data. The
generator is deterministic for a given seed and day.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
PATIENT_ID = "bench-patient-1"
ORDER_SIGN = "ketamine-order-sign"
PATIENT_VIEW = "ketamine-patient-view"
# patient-view's prefetch keys that the generated patient has no resources for (sent as empty searchsets)
_PATIENT_VIEW_EMPTY = ("depressionScoresByCode", "allergies", "lactation", "procedures")

Resource = dict[str, Any]

# (ingredient key, RxCUI, display, daily mg) - RxCUIs from terminology.md section 1a (verified rows only)
_ANTIDEPRESSANTS = [
    ("sertraline", "36437", "sertraline", 100),
    ("escitalopram", "321988", "escitalopram", 20),
    ("bupropion", "42347", "bupropion", 300),
    ("venlafaxine", "39786", "venlafaxine", 150),
    ("mirtazapine", "15996", "mirtazapine", 30),
    ("duloxetine", "72625", "duloxetine", 60),
]
_OTHER_DRUGS = [
    ("atorvastatin", "83367", "atorvastatin", 20),
    ("lisinopril", "29046", "lisinopril", 10),
    ("metformin", "6809", "metformin", 1000),
    ("omeprazole", "7646", "omeprazole", 20),
]
_CONDITIONS = [
    ("F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
    ("F41.1", "Generalized anxiety disorder"),
    ("I10", "Essential (primary) hypertension"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("G47.00", "Insomnia, unspecified"),
    ("M54.50", "Low back pain, unspecified"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
]


@dataclass(frozen=True)
class PatientSize:
    conditions: int
    med_requests: int
    med_statements: int
    bp_days: int  # one BP panel per day for this many days (step bp_every)
    bp_every: int
    weights: int
    phq9: int
    hcg: int
    administrations: int


TYPICAL = PatientSize(
    conditions=6, med_requests=12, med_statements=3, bp_days=140, bp_every=4, weights=10, phq9=20, hcg=1,
    administrations=6,
)
HEAVY = PatientSize(
    conditions=40, med_requests=300, med_statements=100, bp_days=1800, bp_every=1, weights=600, phq9=150,
    hcg=10, administrations=30,
)


class _Gen:
    def __init__(self, now: datetime, seed: int) -> None:
        self.now = now
        self.rng = random.Random(seed)
        self.counter = 0

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def when(self, days_ago: float) -> str:
        return (self.now - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def day(self, days_ago: float) -> str:
        return (self.now - timedelta(days=days_ago)).date().isoformat()


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


def _subject() -> dict[str, str]:
    return {"reference": f"Patient/{PATIENT_ID}"}


def _patient() -> Resource:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "active": True,
        "name": [{"family": "Bench", "given": ["Synthetic"]}],
        "gender": "female",
        "birthDate": "1979-04-12",
    }


def _conditions(g: _Gen, n: int, *, depressed: bool = True) -> list[Resource]:
    pool = _CONDITIONS if depressed else [c for c in _CONDITIONS if not c[0].startswith("F3")]
    out = []
    for i in range(n):
        code, display = pool[i % len(pool)]
        resolved = i >= len(_CONDITIONS)  # the long tail of a heavy record: old, resolved episodes
        out.append({
            "resourceType": "Condition",
            "id": g.new_id("cond"),
            "clinicalStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "resolved" if resolved else "active", "Resolved" if resolved else "Active"),
            "verificationStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
            "category": [_concept("http://terminology.hl7.org/CodeSystem/condition-category",
                                  "problem-list-item", "Problem List Item")],
            "code": _concept(ICD10CM, code, display, display),
            "subject": _subject(),
            "onsetDateTime": g.when(400 + 30 * i),
            "recordedDate": g.when(390 + 30 * i),
        })
    return out


def _dosage(mg: float, per_day: int = 1) -> list[dict[str, Any]]:
    return [{
        "text": f"{mg:g} mg by mouth daily",
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "route": _concept(SNOMED, "26643006", "Oral route"),
        "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
    }]


def _medication_history(g: _Gen, n_requests: int, n_statements: int) -> list[Resource]:
    """Antidepressant trials (12-week courses, back to back) and long-term other drugs, some by reference."""
    out: list[Resource] = []
    medications: dict[str, Resource] = {}
    drugs = _ANTIDEPRESSANTS + _OTHER_DRUGS
    for i in range(n_requests):
        key, rxcui, display, mg = drugs[i % len(drugs)]
        start_ago = 60 + 84 * (i // len(drugs)) + 7 * (i % len(drugs))
        mr: Resource = {
            "resourceType": "MedicationRequest",
            "id": g.new_id("mr"),
            "status": "completed" if start_ago > 90 else "active",
            "intent": "order",
            "subject": _subject(),
            "authoredOn": g.when(start_ago),
            "dosageInstruction": _dosage(mg),
            "dispenseRequest": {
                "validityPeriod": {"start": g.day(start_ago), "end": g.day(max(start_ago - 84, 0))},
                "expectedSupplyDuration": {"value": 84, "unit": "days", "system": UCUM, "code": "d"},
            },
        }
        if i % 3 == 2:  # by reference to an _include'd Medication
            med = medications.setdefault(key, {
                "resourceType": "Medication",
                "id": f"med-{key}",
                "code": _concept(RXNORM, rxcui, display, display),
            })
            mr["medicationReference"] = {"reference": f"Medication/{med['id']}"}
        else:
            mr["medicationCodeableConcept"] = _concept(RXNORM, rxcui, display, f"{display} {mg:g} MG")
        out.append(mr)
    # the current antidepressant the ketamine augments: escitalopram, started 150 days ago, still active
    out.append({
        "resourceType": "MedicationRequest",
        "id": g.new_id("mr"),
        "status": "active",
        "intent": "order",
        "subject": _subject(),
        "authoredOn": g.when(150),
        "medicationCodeableConcept": _concept(RXNORM, "321988", "escitalopram", "escitalopram 20 MG"),
        "dosageInstruction": _dosage(20),
        "dispenseRequest": {"validityPeriod": {"start": g.day(150), "end": g.day(-30)}, "numberOfRepeatsAllowed": 5},
    })
    out.extend(medications.values())
    for i in range(n_statements):
        key, rxcui, display, mg = drugs[(i + 2) % len(drugs)]
        start_ago = 200 + 90 * i
        out.append({
            "resourceType": "MedicationStatement",
            "id": g.new_id("ms"),
            "status": "completed",
            "subject": _subject(),
            "medicationCodeableConcept": _concept(RXNORM, rxcui, display, display),
            "effectivePeriod": {"start": g.day(start_ago), "end": g.day(start_ago - 70)},
            "dosage": _dosage(mg),
        })
    return out


def _vital_category() -> list[dict[str, Any]]:
    return [_concept("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs")]


def _blood_pressures(g: _Gen, days: int, every: int) -> list[Resource]:
    out = []
    for d in range(1, days + 1, every):
        sys_bp = g.rng.randint(112, 138)
        dia_bp = g.rng.randint(70, 88)
        out.append({
            "resourceType": "Observation",
            "id": g.new_id("bp"),
            "status": "final",
            "category": _vital_category(),
            "code": _concept(LOINC, "85354-9", "Blood pressure panel with all children optional"),
            "subject": _subject(),
            "effectiveDateTime": g.when(d + 0.3),
            "component": [
                {"code": _concept(LOINC, "8480-6", "Systolic blood pressure"),
                 "valueQuantity": {"value": sys_bp, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
                {"code": _concept(LOINC, "8462-4", "Diastolic blood pressure"),
                 "valueQuantity": {"value": dia_bp, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
            ],
        })
    return out


def _weights(g: _Gen, n: int, span_days: int) -> list[Resource]:
    step = max(span_days // max(n, 1), 1)
    return [{
        "resourceType": "Observation",
        "id": g.new_id("wt"),
        "status": "final",
        "category": _vital_category(),
        "code": _concept(LOINC, "29463-7", "Body weight"),
        "subject": _subject(),
        "effectiveDateTime": g.when(2 + i * step),
        "valueQuantity": {"value": round(70 + g.rng.uniform(-2, 2), 1), "unit": "kg", "system": UCUM, "code": "kg"},
    } for i in range(n)]


def _phq9(g: _Gen, n: int) -> list[Resource]:
    return [{
        "resourceType": "Observation",
        "id": g.new_id("phq"),
        "status": "final",
        "category": [_concept("http://terminology.hl7.org/CodeSystem/observation-category", "survey", "Survey")],
        "code": _concept(LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
        "subject": _subject(),
        "effectiveDateTime": g.when(3 + 14 * i),
        "valueInteger": 19 - (i % 4),
    } for i in range(n)]


def _hcg(g: _Gen, n: int) -> list[Resource]:
    return [{
        "resourceType": "Observation",
        "id": g.new_id("hcg"),
        "status": "final",
        "category": [_concept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory",
                              "Laboratory")],
        "code": _concept(LOINC, "2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine"),
        "subject": _subject(),
        "effectiveDateTime": g.when(5 + 60 * i),
        "valueCodeableConcept": _concept(SNOMED, "260385009", "Negative"),
    } for i in range(n)]


def _administrations(g: _Gen, n: int) -> list[Resource]:
    return [{
        "resourceType": "MedicationAdministration",
        "id": g.new_id("adm"),
        "status": "completed",
        "medicationCodeableConcept": _concept(RXNORM, "6130", "ketamine", "ketamine"),
        "subject": _subject(),
        "effectiveDateTime": g.when(10 + 4 * i),
        "dosage": {
            "route": _concept(SNOMED, "47625008", "Intravenous route"),
            "dose": {"value": 35, "unit": "mg", "system": UCUM, "code": "mg"},
        },
    } for i in range(n)]


@dataclass(frozen=True)
class PatientData:
    """Every resource of one synthetic patient, grouped by prefetch key."""

    by_key: dict[str, list[Resource]]

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_key.values())

    def prefetch(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, resources in self.by_key.items():
            out[key] = resources[0] if key == "patient" else searchset(resources)
        return out


def patient_data(size: PatientSize, now: datetime, seed: int = 7, *, depressed: bool = True) -> PatientData:
    """``depressed=False``: the same record with no depressive disorder on the problem list."""
    g = _Gen(now, seed)
    meds = _medication_history(g, size.med_requests, size.med_statements)
    return PatientData({
        "patient": [_patient()],
        "conditions": _conditions(g, size.conditions, depressed=depressed),
        "medicationRequests": [r for r in meds if r["resourceType"] in ("MedicationRequest", "Medication")],
        "medicationStatements": [r for r in meds if r["resourceType"] == "MedicationStatement"],
        "bloodPressure": _blood_pressures(g, size.bp_days, size.bp_every),
        "bodyWeight": _weights(g, size.weights, size.bp_days),
        "depressionScores": _phq9(g, size.phq9),
        "pregnancyTests": _hcg(g, size.hcg),
        "administrations": _administrations(g, size.administrations),
    })


def searchset(resources: list[Resource]) -> dict[str, Any]:
    entries = []
    for r in resources:
        entry: dict[str, Any] = {"fullUrl": f"urn:bench:{r['resourceType']}/{r['id']}", "resource": r}
        entry["search"] = {"mode": "include" if r["resourceType"] == "Medication" else "match"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def ketamine_order(now: datetime) -> Resource:
    """Draft IV ketamine 35 mg over 40 minutes (0.5 mg/kg at 70 kg), twice weekly."""
    return {
        "resourceType": "MedicationRequest",
        "id": "draft-ketamine-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": _concept(RXNORM, "6130", "ketamine", "ketamine 35 mg IV"),
        "subject": _subject(),
        "authoredOn": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reasonCode": [_concept(ICD10CM, "F33.2", _CONDITIONS[0][1])],
        "dosageInstruction": [{
            "text": "35 mg IV over 40 minutes twice weekly",
            "route": _concept(SNOMED, "47625008", "Intravenous route"),
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk", "duration": 40,
                                  "durationUnit": "min"}},
            "doseAndRate": [{"doseQuantity": {"value": 35, "unit": "mg", "system": UCUM, "code": "mg"}}],
        }],
    }


def other_order(now: datetime) -> Resource:
    """Draft sertraline 50 mg daily: not a ketamine order."""
    return {
        "resourceType": "MedicationRequest",
        "id": "draft-sertraline-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": _concept(RXNORM, "36437", "sertraline", "sertraline 50 MG Oral Tablet"),
        "subject": _subject(),
        "authoredOn": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dosageInstruction": _dosage(50),
    }


def hook_request(order: Resource, prefetch: dict[str, Any] | None, *, fhir_server: str | None = None,
                 instance: str = "bench") -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": f"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea-{instance}",
        "context": {
            "userId": "Practitioner/bench-practitioner",
            "patientId": PATIENT_ID,
            "encounterId": "bench-encounter",
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"fullUrl": f"urn:bench:MedicationRequest/{order['id']}", "resource": order}]},
        },
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {
            "access_token": "bench-access-token", "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/*.read", "subject": "ketamine-cds",
        }
    return body


def patient_view_request(prefetch: dict[str, Any], *, instance: str = "bench") -> dict[str, Any]:
    """The chart opened (hook patient-view): no draft order; the prefetch of the service's templates."""
    sent = {key: value for key, value in prefetch.items() if key != "bodyWeight"}  # not a patient-view key
    sent.update({key: searchset([]) for key in _PATIENT_VIEW_EMPTY if key not in sent})
    return {
        "hook": "patient-view",
        "hookInstance": f"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea-{instance}",
        "context": {"userId": "Practitioner/bench-practitioner", "patientId": PATIENT_ID,
                    "encounterId": "bench-encounter"},
        "prefetch": sent,
    }  # fmt: skip


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    body: dict[str, Any]
    resources: int
    needs_fhir_stub: bool = False
    service_id: str = ORDER_SIGN  # the CDS service the body is posted to


def build_workloads(now: datetime | None = None, *, fhir_server: str = "http://127.0.0.1:0/fhir") -> list[Workload]:
    now = now or datetime.now(UTC)
    typical = patient_data(TYPICAL, now)
    heavy = patient_data(HEAVY, now)
    not_depressed = patient_data(HEAVY, now, depressed=False)
    return [
        Workload("1-other-drug-heavy-prefetch", "order-sign, sertraline, heavy prefetch",
                 hook_request(other_order(now), heavy.prefetch(), instance="1"), heavy.count),
        Workload("2-ketamine-typical", "order-sign, IV ketamine, typical patient",
                 hook_request(ketamine_order(now), typical.prefetch(), instance="2"), typical.count),
        Workload("3-ketamine-heavy", "order-sign, IV ketamine, heavy patient",
                 hook_request(ketamine_order(now), heavy.prefetch(), instance="3"), heavy.count),
        Workload("4-ketamine-fhir-fallback", "order-sign, IV ketamine, no prefetch, FHIR stub",
                 hook_request(ketamine_order(now), None, fhir_server=fhir_server, instance="4"), typical.count,
                 needs_fhir_stub=True),
        Workload("5-patient-view-not-depressed-heavy", "patient-view, heavy patient without depression",
                 patient_view_request(not_depressed.prefetch(), instance="5"), not_depressed.count,
                 service_id=PATIENT_VIEW),
    ]


def stub_data(now: datetime | None = None) -> dict[str, list[Resource]]:
    """What the FHIR stub serves for workload 4: the typical patient, by prefetch key."""
    return patient_data(TYPICAL, now or datetime.now(UTC)).by_key


def iter_resources(data: dict[str, list[Resource]]) -> Iterator[Resource]:
    for resources in data.values():
        yield from resources


def write_json(path: Path, payload: Any) -> int:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    path.write_bytes(raw)
    return len(raw)


def today() -> date:
    return datetime.now(UTC).date()
