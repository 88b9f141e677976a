"""What a service evaluates is data on its descriptor: draft orders (all, or the selected ones) or the patient.

A service with no draft order (patient-view) is an addition: a descriptor whose subject is the patient and whose
rule set takes the patient runs through the one pipeline, its rules given the patient and the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cds_service.hooks import pipeline
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import PREFETCH, SERVICES, ServiceDefinition
from cds_service.hooks.subjects import DraftOrders, ThePatient, draft_context
from cds_service.knowledge.model import Knowledge
from cds_service.order.model import OrderStage
from cds_service.record.model import PatientRecord
from cds_service.rules.engine import Evaluation, RuleSet
from cds_service.rules.findings import Finding, Indicator, Patient, RuleOutcome
from tests.builders.requests import (
    PATIENT_ID,
    bundle,
    condition,
    full_prefetch,
    hook_request,
    ketamine_order,
    other_order,
    settings,
)
from tests.clock import NOW

SEEN: list[tuple[Patient, int]] = []


def depression_on_record(record: PatientRecord, patient: Patient, kb: Knowledge, now: datetime, /) -> RuleOutcome:
    """A rule of a patient-level rule set: it is given the patient, not an order."""
    SEEN.append((patient, len(record.conditions)))
    if not record.conditions_in("depression"):
        return RuleOutcome()
    return RuleOutcome(findings=(Finding("indication-undocumented", Indicator.INFO),))


def conclude(
    record: PatientRecord, patient: Patient, kb: Knowledge, now: datetime, outcomes: Sequence[RuleOutcome]
) -> Evaluation:
    return Evaluation(findings=tuple(f for o in outcomes for f in o.findings), checks=())


PATIENT_VIEW: ServiceDefinition[Patient] = ServiceDefinition(
    id="test-patient-view",
    hook="patient-view",
    title="A patient-level service of the tests",
    description="Shows that a service with no order is a descriptor and a rule set, nothing else.",
    usage_requirements="",
    subjects=ThePatient(),
    rules=RuleSet("test-patient", (depression_on_record,), conclude),
    request_schema="CdsRequestBase",
    prefetch=tuple(key for key in PREFETCH if key.key in ("patient", "conditions")),
)


def patient_view_request(*conditions: dict[str, Any]) -> dict[str, Any]:
    prefetch = {"patient": full_prefetch()["patient"], "conditions": bundle(*conditions)}
    return {"hook": "patient-view", "hookInstance": "0b8e0f44-4c7b-4bda-9d0b-5d0c2b1b6a51",
            "context": {"userId": "Practitioner/doc-1", "patientId": PATIENT_ID}, "prefetch": prefetch}  # fmt: skip


def run(kb: Any, body: dict[str, Any]) -> pipeline.Answer:
    return pipeline.run(PATIENT_VIEW, HookBody.parsed(body), kb=kb, settings=settings(), now=NOW,
                        base_url="https://cds.test")  # fmt: skip


def test_a_service_whose_subject_is_the_patient_runs_the_one_pipeline(kb: Any) -> None:
    SEEN.clear()
    answer = run(kb, patient_view_request(condition("F33.2")))
    assert [(Patient(f"Patient/{PATIENT_ID}"), 1)] == SEEN
    (verdict,) = answer.decision.verdicts
    assert verdict.subject.what == Patient(f"Patient/{PATIENT_ID}") and verdict.subject.order is None
    assert [(c.topic, c.indicator) for c in answer.decision.cards] == [("indication-undocumented", "info")]
    assert answer.decision.response()["cards"][0]["source"]["topic"]["code"] == "indication-undocumented"


def test_the_patient_service_without_a_finding_answers_no_cards(kb: Any) -> None:
    SEEN.clear()
    assert run(kb, patient_view_request(condition("I10"))).decision.response() == {"cards": []}
    assert len(SEEN) == 1


def test_every_order_service_evaluates_draft_orders_with_the_order_rule_set() -> None:
    assert SERVICES["ketamine-order-sign"].subjects == DraftOrders(OrderStage.SIGN)
    assert SERVICES["ketamine-order-select"].subjects == DraftOrders(OrderStage.SELECT, selected_only=True)
    orders = [s for s in SERVICES.values() if isinstance(s.subjects, DraftOrders)]
    assert {service.rules.name for service in orders} == {"ketamine-order"}
    assert {s.hook for s in orders} == {"order-sign", "order-select"}


def test_order_sign_finds_every_ketamine_draft_and_order_select_only_the_selected(kb: Any) -> None:
    orders = [ketamine_order("ket-1"), ketamine_order("ket-2"), other_order()]
    sign = hook_request(orders=orders)["context"]
    select = hook_request("order-select", orders=orders, selections=["MedicationRequest/ket-2"])["context"]
    found_sign = SERVICES["ketamine-order-sign"].subjects.find(sign, kb)
    found_select = SERVICES["ketamine-order-select"].subjects.find(select, kb)
    assert [o["id"] for o in found_sign] == ["ket-1", "ket-2"]  # type: ignore[index]
    assert [o["id"] for o in found_select] == ["ket-2"]  # type: ignore[index]


def test_a_request_is_built_for_the_subjects_of_a_service() -> None:
    drafts = {"resourceType": "Bundle", "type": "collection", "entry": []}
    sign = draft_context(SERVICES["ketamine-order-sign"].subjects, drafts, ["MedicationRequest/k"])
    select = draft_context(SERVICES["ketamine-order-select"].subjects, drafts, ["MedicationRequest/k"])
    assert sign == {"draftOrders": drafts}
    assert select == {"draftOrders": drafts, "selections": ["MedicationRequest/k"]}


def test_the_patient_subject_asks_nothing_of_the_context_and_finds_the_context_patient(kb: Any) -> None:
    assert ThePatient().context_issues({}) == []
    assert ThePatient().find({"patientId": "p-9"}, kb) == ("p-9",)
    assert ThePatient().find({}, kb) == ()
