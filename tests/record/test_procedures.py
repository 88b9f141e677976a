"""Procedures the record reads: electroconvulsive therapy, recognised by its words (no verified code exists)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from tests.clock import NOW, days_ago


def procedure(text: str, *, status: str = "completed", when: Any = None, pid: str = "pr-1") -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "urn:oid:1.2.3", "code": "LOCAL-1", "display": text}], "text": text},
        "performedDateTime": when if when is not None else days_ago(30).isoformat(),
    }


@pytest.mark.parametrize(
    "text", ["Electroconvulsive therapy", "ECT, bilateral", "Right unilateral ECT session 4", "Electroshock therapy"]
)
def test_ect_is_recognised_by_its_words(kb: Knowledge, text: str) -> None:
    rec = build_record([procedure(text)], kb, available=kinds.ALL, now=NOW)
    (ect,) = rec.procedures_in("ect")
    assert (ect.resource_id, ect.when, ect.label) == ("pr-1", days_ago(30), text)
    assert ect.evidence().describe() == f"{text} on {days_ago(30).date()}"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Colonoscopy", "completed"),
        ("Ectopic pregnancy surgery", "completed"),
        ("No ECT", "completed"),
        ("Electroconvulsive therapy", "not-done"),
        ("Electroconvulsive therapy", "entered-in-error"),
        ("Electroconvulsive therapy", "preparation"),
    ],
)
def test_other_procedures_and_ect_not_done_are_not_read(kb: Knowledge, text: str, status: str) -> None:
    assert build_record([procedure(text, status=status)], kb, available=kinds.ALL, now=NOW).procedures == ()


def test_a_period_counts_from_its_end_and_an_invalid_ect_record_is_set_aside(kb: Knowledge) -> None:
    period = procedure("ECT")
    del period["performedDateTime"]
    period["performedPeriod"] = {"start": days_ago(40).isoformat(), "end": days_ago(39).isoformat()}
    rec = build_record([period, procedure("ECT", when="not a date", pid="pr-2")], kb, available=kinds.ALL, now=NOW)
    assert [p.when for p in rec.procedures] == [days_ago(39)]
    assert [s.resource_id for s in rec.skipped] == ["pr-2"]
    assert rec.set_aside_of(kinds.PROCEDURES)


@pytest.mark.parametrize("code", ["GZB0ZZZ", "GZB4ZZZ"])
def test_ect_is_recognised_by_its_icd10_pcs_code_alone(kb: Knowledge, code: str) -> None:
    coded = procedure("x")
    coded["code"] = {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": code}]}
    (ect,) = build_record([coded], kb, available=kinds.ALL, now=NOW).procedures_in("ect")
    assert ect.label == "electroconvulsive therapy"
    other = procedure("x")
    other["code"] = {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": "GZ72ZZZ"}]}
    assert build_record([other], kb, available=kinds.ALL, now=NOW).procedures == ()  # family psychotherapy
