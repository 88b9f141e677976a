"""Card texts of the §0-§3 and §7 topics (rules-v2): every variant a rule can emit has texts, every summary fits
140 characters as composed with the longest facts the rules produce (never cut), and no text speaks the
project's jargon (seed numbers, "met")."""

from __future__ import annotations

import re

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.rules.indication import compose_names

VARIANTS = {
    "indication-undocumented": {"default", "anaesthetic-dose", "unobtainable"},
    "antidepressant-not-concurrent": {"default", "esketamine", "esketamine-suicidal-ideation", "unobtainable"},
    "bipolar-mood-stabilizer-missing": {"default", "inactive", "unobtainable"},
    "bipolar-mood-stabilizer-nonstandard": {"default", "no-antimanic"},
    "mania-current": {"recent", "older"},
    "hypertension-uncontrolled": {"default", "condition"},
    "hypertension-elevated": {"default", "future"},
    "psychosis": {"active", "history"},
    "ketamine-misuse-history": {"default", "uropathy"},
    "substance-use-disorder": {"default"},
    "cardiovascular-disease": {"history", "acute", "past-event", "stable"},
    "hepatic-impairment": {"decompensated", "compensated"},
    "intracranial-pressure": {"default", "benign"},
    "intraocular-pressure": {"default"},
    "pregnancy": {
        "condition",
        "condition-negative-test",
        "undated",
        "test",
        "old-test",
        "equivocal",
        "unreadable",
        "male",
    },
    "hypersensitivity": {"immune", "allergy", "intolerance", "known-effect"},
    "drug-interaction": {"maoi", "stimulant", "both"},
    "minor-patient": {"default"},
    "genitourinary-toxicity": {"cystitis", "named"},
    "lactation": {"default", "undated"},
    "suicidal-ideation": {"default"},
    "chronic-pain-evidence": {"crps", "sci", "default"},
    "ptsd-evidence": {"default"},
}
NAMES = ["Bipolar disorder, current episode depressed, severe, without psychotic features (active)", "Schizoaffective"]
LONGEST = {
    "condition": compose_names(NAMES, 60, "a psychotic disorder"),
    "diagnosis": compose_names(NAMES, 60, "bipolar disorder"),
    "stabilizers": compose_names(["lamotrigine", "lurasidone", "lumateperone"], 40, "another agent"),
    "substance": compose_names(["Ketamine hydrochloride injection 50 mg/mL vial"], 40, "ketamine"),
    "reaction": compose_names(["Anaphylaxis", "Bronchospasm", "Angio-oedema"], 40, "a reaction"),
    "medicine": compose_names(["tranylcypromine", "lisdexamfetamine", "dexmethylphenidate"], 40, "x"),
    "dose": "1000 mg (12.5 mg/kg) over 14.5 min",
    "test": "hCG >=10000.5 IU/L (positive) on 2026-11-20",
    "drug": "esketamine",
    "date": "2026-11-20",
    "test_date": "2026-11-20",
    "weeks": "8",
    "days": "14",
    "age": "17",
    "adult": "18",
    "count": "1234",
    "bp": "300/200",
    "limit": "160/100",
    "source": "order reason",
    "problem": "it was not obtained from the EHR",
    "indication": "chronic pain (spinal cord injury)",
}


@pytest.mark.parametrize("code", sorted(VARIANTS))
def test_every_variant_has_texts_that_fit_and_read_as_clinical_words(kb: Knowledge, code: str) -> None:
    topic = kb.topics[code]
    assert set(topic.variants) == VARIANTS[code]
    assert topic.title and topic.logic and "[[" not in topic.logic
    for name, text in topic.variants.items():
        summary = text.summary.format_map(LONGEST)
        assert len(summary) <= 140, (code, name, len(summary))
        assert "{" not in summary and "…" not in summary
        words = f"{summary} {text.rationale}".lower()
        assert not re.search(r"\bseeds?\b|\b00[0-4]\b|\bmet\b|not met", words), (code, name)


def test_composed_names_never_cut_inside_a_word():
    assert compose_names(["Hepatorenal syndrome"], 60, "x") == "Hepatorenal syndrome"
    assert compose_names(["A" * 70], 60, "liver disease") == "liver disease"
    assert (
        compose_names(["Cirrhosis of liver, with ascites and varices, decompensated again"], 20, "x")
        == "Cirrhosis of liver"
    )
    assert compose_names(["one", "two", "three"], 14, "x") == "one and 2 more"
    assert compose_names(["one", "two", "three"], 13, "x") == "x and 2 more"
    assert compose_names([], 10, "fallback") == "fallback"
