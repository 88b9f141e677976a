"""Findings → cards, with the bundled knowledge base texts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.cards import render
from cds_service.cards.render import OVERRIDE_SYSTEM, TOPIC_SYSTEM, render_cards
from cds_service.hooks.schemas import schema_issues
from cds_service.record.model import Evidence
from cds_service.rules.engine import Evaluation
from cds_service.rules.findings import CreateAssessment, DeleteOrder, Finding, Indicator, RewriteDose
from tests.builders.requests import ketamine_order

BASE = "https://cds.example.org"
BP_FACTS = {"bp": "172/104", "date": "2026-11-20", "limit": "160/100"}


def render_one(kb: Any, finding: Finding, order: dict[str, Any] | None = None,
               reference: str | None = "MedicationRequest/ket-1") -> dict[str, Any]:
    cards = render_cards(Evaluation(findings=(finding,), checks=()), order or ketamine_order(), reference, kb,
                         base_url=BASE + "/", patient_id="pat-1")
    assert len(cards) == 1
    assert schema_issues("Card", cards[0]) == []
    return cards[0]


def test_card_text_source_and_detail_come_from_the_topic(kb: Any) -> None:
    evidence = Evidence("Observation", "bp-1", datetime(2026, 11, 20, tzinfo=UTC), "BP 172/104 mmHg")
    finding = Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP_FACTS,
                      detail=("- line from the rule",), evidence=(evidence,))
    card = render_one(kb, finding)
    topic = kb.topics["hypertension-uncontrolled"]
    expected = "Blood pressure 172/104 on 2026-11-20 is at or above 160/100: hold the dose and treat first"
    assert card["summary"] == expected
    assert card["indicator"] == "critical"
    assert card["source"]["label"] == topic.source_label
    assert card["source"]["url"] == "https://cds.example.org/docs/rules#hypertension-uncontrolled"
    assert card["source"]["topic"] == {"system": TOPIC_SYSTEM, "code": "hypertension-uncontrolled",
                                       "display": topic.title}
    assert card["detail"].startswith(topic.variants["default"].rationale.strip()[:40])
    assert "- line from the rule" in card["detail"]
    assert "- BP 172/104 mmHg on 2026-11-20" in card["detail"]
    assert "bp-1" not in card["detail"] and "bp-1" not in card["summary"]  # ids only in the audit extension
    assert card["extension"] == {render.EVIDENCE_EXTENSION: [{"reference": "Observation/bp-1", "date": "2026-11-20"}]}
    assert uuid.UUID(card["uuid"])


@pytest.mark.parametrize(("indicator", "has_reasons"),
                         [(Indicator.INFO, False), (Indicator.WARNING, True), (Indicator.CRITICAL, True)])
def test_override_reasons_on_warning_and_critical_only(kb: Any, indicator: Indicator, has_reasons: bool) -> None:
    card = render_one(kb, Finding("hypertension-uncontrolled", indicator, facts=BP_FACTS))
    assert ("overrideReasons" in card) is has_reasons
    if has_reasons:
        assert all(r["system"] == OVERRIDE_SYSTEM and r["display"] for r in card["overrideReasons"])
        assert "benefit-outweighs-risk" in {r["code"] for r in card["overrideReasons"]}


def test_delete_suggestion_targets_the_draft(kb: Any) -> None:
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP_FACTS,
                                  suggestions=(DeleteOrder(),)))
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    assert uuid.UUID(suggestion["uuid"])
    assert suggestion["actions"] == [{"type": "delete", "description": suggestion["actions"][0]["description"],
                                      "resourceId": "MedicationRequest/ket-1"}]


def test_delete_suggestion_skipped_for_a_draft_without_id(kb: Any) -> None:
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP_FACTS,
                                  suggestions=(DeleteOrder(),)), order=ketamine_order(None), reference=None)
    assert "suggestions" not in card and "selectionBehavior" not in card


def test_create_assessment_copies_the_template_with_the_patient(kb: Any) -> None:
    card = render_one(kb, Finding("pre-dose-data-missing", Indicator.WARNING, facts={"items": "a depression score"},
                                  suggestions=(CreateAssessment("phq9"),)))
    assert card["suggestions"][0]["label"] == "Record a PHQ-9"
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create"
    assert action["resource"]["resourceType"] == "ServiceRequest"
    assert action["resource"]["subject"] == {"reference": "Patient/pat-1"}
    assert "subject" not in kb.assessment_orders["phq9"]  # the template itself is untouched


def test_rewrite_dose_becomes_an_update_of_the_whole_order(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def fake_rewrite(resource: dict[str, Any], dose_mg: float, minutes: float, per_week: int | None) -> dict[str, Any]:
        calls.append((dose_mg, minutes, per_week))
        return {**resource, "note": [{"text": "rewritten"}]}

    monkeypatch.setattr(render, "rewrite_to_standard", fake_rewrite)
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.INFO, facts=BP_FACTS,
                                  suggestions=(RewriteDose(35, 40, 2),)))
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Change to 35 mg over 40 minutes, twice a week"
    action = suggestion["actions"][0]
    assert action["type"] == "update"
    assert action["resource"]["id"] == "ket-1" and action["resource"]["note"] == [{"text": "rewritten"}]
    assert calls == [(35, 40, 2)]


def test_failing_rewrite_drops_the_suggestion_not_the_card(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> Any:
        raise ValueError("cannot rewrite")

    monkeypatch.setattr(render, "rewrite_to_standard", boom)
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP_FACTS,
                                  suggestions=(RewriteDose(35, 40), DeleteOrder())))
    assert [s["actions"][0]["type"] for s in card["suggestions"]] == ["delete"]


def test_missing_fact_reads_not_recorded_and_an_overlong_summary_is_a_logged_defect(
    kb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts={"bp": "1/1"}))
    assert "(not recorded)" in card["summary"]
    long_facts = {**BP_FACTS, "date": "on a day long ago " * 8 + "(with a note)"}
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=long_facts))
    assert len(card["summary"]) <= render.SUMMARY_MAX and card["summary"].endswith("…")
    assert "(with" not in card["summary"]  # never cut inside a word or a parenthesis
    assert "summary of topic hypertension-uncontrolled over 139 characters" in caplog.text


def test_unknown_variant_falls_back_to_default_and_unknown_topic_still_renders(kb: Any) -> None:
    card = render_one(kb, Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP_FACTS, variant="nope"))
    assert card["summary"].startswith("Blood pressure 172/104")
    card = render_one(kb, Finding("not-a-topic", Indicator.WARNING))
    assert card["source"]["topic"]["code"] == "not-a-topic"
    assert card["overrideReasons"]


def test_summary_card_stays_first(kb: Any) -> None:
    findings = (
        Finding("eligibility-summary", Indicator.INFO, variant="iv-ketamine",
                facts={"drug": "IV ketamine", "indication": "depression", "verdict": "2 criteria not met"}),
        Finding("hypertension-uncontrolled", Indicator.CRITICAL, facts=BP_FACTS),
    )
    cards = render_cards(Evaluation(findings=findings, checks=()), ketamine_order(), "MedicationRequest/ket-1", kb,
                         base_url=BASE, patient_id="pat-1")
    assert [c["source"]["topic"]["code"] for c in cards] == ["eligibility-summary", "hypertension-uncontrolled"]
    assert len({c["uuid"] for c in cards}) == 2
