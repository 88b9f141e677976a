"""Hypersensitivity to ketamine or esketamine (clinical-rules.md v2 §3): reading AllergyIntolerance resources and
judging them. The prefetch key and the FHIR fallback are tested end to end by the fixtures
(hypersensitivity-* in fhir_fixtures, with and without prefetch)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cds_service.hooks.catalog import PREFETCH
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import AllergyFact, DataGap, Recognition
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator
from cds_service.rules.hypersensitivity import hypersensitivity_rule
from tests.builders.orders import order
from tests.builders.records import record
from tests.clock import NOW

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def allergy(code: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": extra.pop("id", "a1"),
        "patient": {"reference": "Patient/p"},
        "code": code,
        **extra,
    }


def status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def read(kb, *resources):  # type: ignore[no-untyped-def]
    return build_record(list(resources), kb, available=kinds.ALL)


def test_allergies_prefetch_key_is_declared():
    (key,) = [p for p in PREFETCH if p.key == "allergies"]
    assert key.template == "AllergyIntolerance?patient={{context.patientId}}" and key.kind == kinds.ALLERGIES
    assert not key.required


@pytest.mark.parametrize(
    ("code", "drug", "recognition"),
    [
        ({"coding": [{"system": RX, "code": "6130", "display": "ketamine"}]}, "ketamine", Recognition.CODE),
        (
            {"coding": [{"system": RX, "code": "2201625", "display": "esketamine Nasal Spray [Spravato]"}]},
            "esketamine",
            Recognition.CODE,
        ),
        ({"text": "Ketamine hydrochloride"}, "ketamine", Recognition.NAME),
        ({"coding": [{"system": "urn:local", "code": "K1", "display": "Spravato"}]}, "esketamine", Recognition.NAME),
    ],
)
def test_ketamine_or_esketamine_by_code_or_name(kb, code, drug, recognition):
    (fact,) = read(kb, allergy(code)).allergies
    assert (fact.drug, fact.recognition) == (drug, recognition)


def test_other_allergies_and_entered_in_error_are_not_kept(kb):
    rec = read(
        kb,
        allergy({"text": "Penicillin"}),
        allergy({"text": "ketamine"}, id="a2", verificationStatus=status(VERIFICATION, "entered-in-error")),
    )
    assert rec.allergies == ()


def fact(**kw: Any) -> AllergyFact:
    base = AllergyFact("a1", "ketamine", "Ketamine", "active", "confirmed", None, (), None)
    return dataclasses.replace(base, **kw)


@pytest.mark.parametrize(
    ("kw", "indicator", "variant"),
    [
        ({}, Indicator.CRITICAL, "allergy"),
        ({"type": "allergy"}, Indicator.CRITICAL, "allergy"),
        ({"type": "intolerance"}, Indicator.WARNING, "intolerance"),
        ({"type": "intolerance", "reactions": ("Anaphylaxis",)}, Indicator.CRITICAL, "immune"),
        ({"reactions": ("Urticaria",)}, Indicator.CRITICAL, "immune"),
        ({"reactions": ("Hallucinations", "Vomiting")}, Indicator.WARNING, "known-effect"),
        ({"reactions": ("Hallucinations", "Rash")}, Indicator.CRITICAL, "immune"),
        ({"reactions": ("Hallucinations", "Palpitations")}, Indicator.CRITICAL, "allergy"),
        ({"clinical_status": None, "verification_status": None}, Indicator.CRITICAL, "allergy"),
        ({"verification_status": "unconfirmed"}, Indicator.CRITICAL, "allergy"),
    ],
)
def test_severity_by_reactions_and_type(kb, kw, indicator, variant):
    (f,) = hypersensitivity_rule(record(allergies=(fact(**kw),)), order(), kb, NOW).findings
    assert (f.topic, f.indicator, f.variant) == ("hypersensitivity", indicator, variant)
    assert f.suggestions == ((DeleteOrder(),) if indicator is Indicator.CRITICAL else ())


@pytest.mark.parametrize(
    "kw", [{"clinical_status": "resolved"}, {"clinical_status": "inactive"}, {"verification_status": "refuted"}]
)
def test_resolved_inactive_or_refuted_give_nothing(kb, kw):
    out = hypersensitivity_rule(record(allergies=(fact(**kw),)), order(), kb, NOW)
    assert out.findings == () and out.checks[0].status is CheckStatus.MET


def test_no_allergy_list_says_allergies_not_checked(kb):
    for rec in (record(available=kinds.ALL - {kinds.ALLERGIES}), record(gaps=[DataGap("allergies", "timed out")])):
        (check,) = hypersensitivity_rule(rec, order(), kb, NOW).checks
        assert check.status is CheckStatus.UNDOCUMENTED and check.note.startswith("allergies not checked")


def test_fhir_statuses_and_reactions_are_read(kb):
    rec = read(
        kb,
        allergy(
            {"text": "ketamine"},
            type="intolerance",
            clinicalStatus=status(CLINICAL, "active"),
            reaction=[{"manifestation": [{"text": "Angioedema"}], "description": "lips swelled"}],
        ),
    )
    (f,) = hypersensitivity_rule(rec, order(), kb, NOW).findings
    assert (f.indicator, f.variant) == (Indicator.CRITICAL, "immune")
    assert "Angioedema" in f.facts["reaction"]
    resolved = read(kb, allergy({"text": "ketamine"}, clinicalStatus=status(CLINICAL, "resolved")))
    assert hypersensitivity_rule(resolved, order(), kb, NOW).findings == ()
