"""Section 7: indication-specific evidence cards (chronic pain, PTSD, suicidal ideation)."""

from __future__ import annotations

import dataclasses

import pytest

from cds_service.record.model import Code
from cds_service.rules import engine
from cds_service.rules.findings import Indicator
from tests.builders.orders import iv_order
from tests.builders.records import SNOMED, condition, record, weight
from tests.clock import days_ago
from tests.rules.support import by_topic, run, topics

W = [weight(70)]
CRPS = condition("c-crps", "chronic-pain-crps", "G90.50")
SCI = condition("c-sci", "chronic-pain-sci", "G89.0")
FIBRO = condition("c-fm", "chronic-pain-other", "M79.7")
PTSD = condition("c-ptsd", "ptsd", "F43.10")
SI = condition("c-si", "suicidal-ideation", "R45.851")


@pytest.mark.parametrize(
    ("pain", "variant", "indicator"),
    [(CRPS, "crps", Indicator.INFO), (SCI, "sci", Indicator.INFO), (FIBRO, "default", Indicator.WARNING)],
)
def test_chronic_pain_variants(kb, pain, variant, indicator):  # type: ignore[no-untyped-def]
    rec = record(depressed=False, weights=W, conditions=[pain])
    f = by_topic(run(rec, iv_order(35), kb)[0], "chronic-pain-evidence")
    assert (f.variant, f.indicator) == (variant, indicator)


def test_chronic_pain_from_order_reason(kb):  # type: ignore[no-untyped-def]
    order = iv_order(35, reason=(Code("http://hl7.org/fhir/sid/icd-10-cm", "G90.511"),))
    f = by_topic(run(record(depressed=False, weights=W, conditions=[]), order, kb)[0], "chronic-pain-evidence")
    assert f.variant == "crps" and f.facts["source"] == "order"


def test_no_pain_card_for_depression(kb):  # type: ignore[no-untyped-def]
    assert "chronic-pain-evidence" not in topics(run(record(weights=W), iv_order(35), kb)[0])


def test_trd_rules_do_not_fire_for_chronic_pain(kb, now):  # type: ignore[no-untyped-def]
    result = engine.evaluate(record(depressed=False, weights=W, conditions=[CRPS]), iv_order(35), kb, now)
    found = {f.topic for f in result.findings}
    assert "chronic-pain-evidence" in found
    assert not found & {"trd-criteria-unmet", "antidepressant-not-concurrent", "depression-severity-undocumented",
                        "depression-severity-insufficient"}


def test_ptsd_evidence(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(depressed=False, weights=W, conditions=[PTSD]), iv_order(35), kb)
    assert by_topic(findings, "ptsd-evidence").indicator is Indicator.INFO
    # depression outranks PTSD on the problem list
    assert "ptsd-evidence" not in topics(run(record(depressed=False, weights=W, conditions=[PTSD, condition(
        "c-mdd", "depression", "F33.2")]), iv_order(35), kb)[0])


def test_suicidal_ideation_from_problem_list(kb):  # type: ignore[no-untyped-def]
    recent = dataclasses.replace(SI, onset=days_ago(3), recorded=days_ago(3))  # §0: dated within 30 days
    rec = record(depressed=False, weights=W, conditions=[condition("c-mdd", "depression", "F33.2"), recent])
    f = by_topic(run(rec, iv_order(35), kb)[0], "suicidal-ideation")
    assert f.facts["source"] == "problem list" and f.evidence


def test_suicidal_ideation_from_order_reason(kb):  # type: ignore[no-untyped-def]
    order = iv_order(35, reason=(Code(SNOMED, "6471006", "Suicidal thoughts"),))
    f = by_topic(run(record(weights=W), order, kb)[0], "suicidal-ideation")
    assert f.facts["source"] == "order reason"


def test_resolved_suicidal_ideation_does_not_fire(kb):  # type: ignore[no-untyped-def]
    resolved = condition("c-si", "suicidal-ideation", "R45.851", status="resolved")
    rec = record(depressed=False, weights=W, conditions=[resolved])
    assert "suicidal-ideation" not in topics(run(rec, iv_order(35), kb)[0])
