"""build_record as a whole: patient facts, de-duplication, gaps, availability, never raising on bad data."""

from __future__ import annotations

from datetime import date

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import DataGap
from tests.record.record_samples import ICD, condition, patient


def test_patient_facts_and_availability(kb: Knowledge) -> None:
    gap = DataGap("bloodPressure", "the EHR reported an error while prefetching")
    record = build_record([patient()], kb, available=frozenset({kinds.PATIENT}), gaps=(gap,))
    assert record.patient.birth_date == date(1958, 3, 14) and record.patient.gender == "female"
    assert record.patient.age_on(date(2026, 11, 23)) == 68
    assert record.available == {kinds.PATIENT}
    assert record.data_gaps == (gap,)


def test_invalid_patient_is_skipped_not_raised(kb: Knowledge) -> None:
    record = build_record([patient(birthDate="14/03/1958")], kb, available=frozenset({kinds.PATIENT}))
    assert record.patient.birth_date is None
    assert [(s.resource_type, s.problem.split(":")[0]) for s in record.skipped] == [("Patient", "birthDate")]


def test_duplicates_by_type_and_id_are_read_once(kb: Knowledge) -> None:
    same = condition("c1", ICD, "F33.1")
    record = build_record([same, dict(same), condition("c2", ICD, "F33.1")], kb, available=kinds.ALL)
    assert sorted(c.resource_id or "" for c in record.conditions) == ["c1", "c2"]


def test_garbage_never_raises(kb: Knowledge) -> None:
    junk: list = [
        "not a resource",
        {"resourceType": "Observation", "code": "oops"},
        {"resourceType": "Condition", "code": {"coding": "nope"}},
        {"resourceType": "MedicationStatement", "medicationCodeableConcept": {"text": "sertraline"}, "dosage": 5},
        {"resourceType": "MedicationRequest", "medicationReference": {"reference": 42}},
        {"resourceType": "Unknown", "id": "x"},
        {},
    ]
    record = build_record(junk, kb, available=kinds.ALL)
    assert record.conditions == () and record.medication_uses == ()
    assert {s.resource_type for s in record.skipped} <= {"MedicationStatement", "MedicationRequest"}
