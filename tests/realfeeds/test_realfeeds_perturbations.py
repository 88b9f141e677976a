"""Property: what a real feed does to a prefetch never changes the context patient's record or cards, except by a
named data note (clinical-rules.md §10).

Perturbations of a library fixture's prefetch: the entries of every search shuffled; resources duplicated
(also across keys); another patient's alarming records added (schizophrenia, a BP of 190/120, a positive
hCG, ketamine use disorder); readings dated more than 24 hours ahead added (a device clock running ahead:
ordinary values, so that only their number and place can matter, and enough of them to fill the per-kind
cap). The record must keep the same facts, and say what it set aside (another patient, in the future); the
cards must keep their topics, indicators and summaries (the eligibility summary may add a data note).
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import fields
from datetime import timedelta
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.config import Settings
from cds_service.hooks.pipeline import handle_hook_call
from cds_service.knowledge.loader import default_knowledge
from cds_service.record.model import SET_ASIDE_FUTURE, SET_ASIDE_OTHER_PATIENT, PatientRecord
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest
from cds_service.sandbox.requests import build_request, load_template
from tests.clock import NOW
from tests.realfeeds.pipeline_record import record_for

MANIFEST = load_manifest()
# A spread of the library: contraindications, a course of treatment, TRD with full history, pregnancy, esketamine.
FIXTURES = ("bp-160-100", "eligible-mdd-iv", "psychosis-mdd-psychotic-features", "pregnancy-positive-hcg",
            "eligible-esketamine-56mg", "course-nonresponse-two-infusions", "long-history-eight-years",
            "mess-eligible-real-feed", "bp-separate-observations-170-104", "weight-85-days")  # fmt: skip
SETTINGS = Settings(auth_enabled=False, fhir_server_allowlist=(), database_url="sqlite://")
OTHER = "Patient/another-patient-entirely"
LOINC, ICD = "http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm"
# Facts that must not change; set_aside, normalised and skipped are the data notes.
FACTS = tuple(f.name for f in fields(PatientRecord) if f.name not in ("set_aside", "normalised", "skipped"))


@cache
def baseline(name: str) -> tuple[dict[str, Any], PatientRecord, list[tuple[str, str, str]]]:
    entry = MANIFEST.get(name)
    body = build_request(
        MANIFEST.bundle(entry), load_template(entry.order_template), "order-sign", anchor=MANIFEST.anchor,
        params=entry.order_params, name=name,
    )  # fmt: skip
    body = roller.roll(body, NOW)
    body.pop("fhirServer", None)
    return body, record_of(body), cards_of(body)


def record_of(body: dict[str, Any]) -> PatientRecord:
    return record_for(body, default_knowledge(), SETTINGS)[0]


def cards_of(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    body = copy.deepcopy(body) | {"hookInstance": str(uuid.uuid4())}
    response = handle_hook_call(
        "ketamine-order-sign", body, kb=default_knowledge(), settings=SETTINGS, now=NOW,
        base_url="https://cds.example.org",
    )  # fmt: skip
    cards = []
    for card in response["cards"]:
        topic = card["source"]["topic"]["code"]
        shown = "" if topic == "eligibility-summary" else card["summary"]  # the summary may add a data note
        cards.append((topic, card["indicator"], shown))
    return [cards[0], *sorted(cards[1:])] if cards else []


def alarming(kind: int, rid: str) -> dict[str, Any]:
    """Another patient's record that would raise a card were it this patient's."""
    subject = {"reference": OTHER}
    when = (NOW - timedelta(days=2)).isoformat()
    if kind == 0:
        return {"resourceType": "Condition", "id": rid, "subject": subject,
                "code": {"coding": [{"system": ICD, "code": "F20.0", "display": "Paranoid schizophrenia"}]}}
    if kind == 1:
        return {"resourceType": "Condition", "id": rid, "subject": subject,
                "code": {"coding": [{"system": ICD, "code": "F19.20"}], "text": "Ketamine use disorder, severe"}}
    if kind == 2:
        return future_or_past_bp(rid, when, 190, 120) | {"subject": subject}
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": subject,
            "code": {"coding": [{"system": LOINC, "code": "2106-3"}]}, "effectiveDateTime": when,
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                            "code": "POS"}]}]}  # fmt: skip


def future_or_past_bp(rid: str, when: str, systolic: int, diastolic: int, subject: str = "") -> dict[str, Any]:
    component = [
        {"code": {"coding": [{"system": LOINC, "code": code}]}, "valueQuantity": {"value": value, "unit": "mmHg"}}
        for code, value in (("8480-6", systolic), ("8462-4", diastolic))
    ]
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": subject},
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]}, "effectiveDateTime": when,
            "component": component}  # fmt: skip


def perturb(
    body: dict[str, Any], seed: int, duplicates: int, others: list[int], future_hours: list[int]
) -> dict[str, Any]:
    body = copy.deepcopy(body)
    rng = random.Random(seed)
    prefetch = body["prefetch"]
    searches = [v for v in prefetch.values() if isinstance(v, dict) and v.get("resourceType") == "Bundle"]
    own = [e["resource"] for b in searches for e in b.get("entry") or ()]
    patient = f"Patient/{body['context']['patientId']}"
    for _ in range(duplicates if own else 0):
        rng.choice(searches).setdefault("entry", []).append({"resource": copy.deepcopy(rng.choice(own))})
    for i, kind in enumerate(others):
        rng.choice(searches).setdefault("entry", []).append({"resource": alarming(kind, f"other-{i}")})
    for i, hours in enumerate(future_hours):
        when = (NOW + timedelta(hours=24, seconds=1) + timedelta(hours=hours)).isoformat()
        reading = future_or_past_bp(f"future-{i}", when, 118, 76, patient)
        prefetch["bloodPressure"].setdefault("entry", []).append({"resource": reading})
    for search in searches:
        rng.shuffle(search.get("entry") or [])
    return body


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(FIXTURES),
    seed=st.integers(0, 2**32 - 1),
    duplicates=st.integers(0, 6),
    others=st.lists(st.integers(0, 3), max_size=5),
    future_hours=st.lists(st.integers(0, 24 * 60), max_size=14),
)
def test_perturbations_change_nothing_but_a_named_data_note(
    name: str, seed: int, duplicates: int, others: list[int], future_hours: list[int]
) -> None:
    body, record, cards = baseline(name)
    perturbed = perturb(body, seed, duplicates, others, future_hours)
    after = record_of(perturbed)
    for fact in FACTS:
        assert getattr(after, fact) == getattr(record, fact), fact
    notes = {(s.kind, s.reason): s.count for s in after.set_aside if s not in record.set_aside}
    assert {reason for _kind, reason in notes} <= {SET_ASIDE_OTHER_PATIENT, SET_ASIDE_FUTURE}
    assert sum(n for (_k, reason), n in notes.items() if reason == SET_ASIDE_FUTURE) == len(future_hours)
    assert sum(n for (_k, reason), n in notes.items() if reason == SET_ASIDE_OTHER_PATIENT) == len(others)
    assert cards_of(perturbed) == cards


def test_the_fixtures_of_the_property_exist() -> None:
    assert {e.name for e in MANIFEST.entries} >= set(FIXTURES)
