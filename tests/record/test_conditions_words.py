"""Condition recognition of clinical-rules.md v2 §3: exclusions, code patterns and the words of a concept - never
negated, ruled-out, family-history or screening text, and "history of" never as an active disorder."""

from __future__ import annotations

import pytest

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.conditions import ConditionIndex
from cds_service.record.model import Code, Recognition
from tests.record.record_samples import ICD, SCT, condition

AVAILABLE = frozenset({kinds.PATIENT, kinds.CONDITIONS})


def categories(kb: Knowledge, *codes: tuple[str, str], text: str | None = None) -> frozenset[str]:
    index = ConditionIndex.for_knowledge(kb)
    return index.classify(tuple(Code(s, c) for s, c in codes), (text,) if text else ()).all


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("Major depressive disorder, recurrent severe without psychotic features", "psychosis"),
        ("No history of psychosis", "psychosis"),
        ("Negative for bipolar disorder", "bipolar"),
        ("Patient denies ketamine abuse", "ketamine-misuse"),
        ("Bipolar disorder ruled out", "bipolar"),
        ("Rule out hydrocephalus", "intracranial-pressure"),
        ("Not pregnant", "pregnancy"),
        ("Family history of bipolar disorder", "bipolar"),
        ("FH: schizophrenia (mother)", "psychosis"),
        ("Screening for depression", "depression"),
        ("Pregnancy test negative", "pregnancy"),
        ("Non-psychotic major depression", "psychosis"),
    ],
)
def test_negated_non_personal_and_screening_text_never_matches(kb, text, absent):
    assert absent not in categories(kb, text=text)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("Z82.3", "Family history of stroke"),
        ("Z13.31", "Encounter for screening for depression"),
        ("Z03.89", "Suspected psychosis ruled out"),
        ("Z32.02", "Pregnancy test, result negative"),
    ],
)
def test_family_history_and_screening_codes_are_never_a_category(kb, code, text):
    assert categories(kb, (ICD, code), text=text) == frozenset()


def test_history_of_counts_but_never_as_an_active_disorder(kb):
    record = build_record([condition("h", None, None, text="History of psychosis")], kb, available=AVAILABLE)
    (fact,) = record.conditions
    assert "psychosis" in fact.categories and "psychosis" in fact.history_categories
    assert record.conditions_in("psychosis") == () and record.conditions_in("psychosis", active_only=False) == (fact,)
    mixed = categories(kb, text="Major depressive disorder with history of psychosis")
    assert {"depression", "psychosis"} <= mixed


@pytest.mark.parametrize(
    ("codes", "text"),
    [
        (((ICD, "F19.20"),), "Ketamine dependence"),
        (((ICD, "T41.291A"),), "Ketamine misuse, poisoning"),
        (((ICD, "F16.20"),), "PCP dependence"),
        ((), "History of ketamine abuse"),
        (((SCT, "724715004"),), None),
        (((ICD, "F19.10"),), "Other psychoactive substance abuse (esketamine, non-medical use)"),
    ],
)
def test_ketamine_misuse_by_name_under_any_code(kb, codes, text):
    assert "ketamine-misuse" in categories(kb, *codes, text=text)


def test_hallucinogen_use_disorder_without_a_dissociative_is_substance_use(kb):
    assert categories(kb, (ICD, "F16.20"), text="Hallucinogen dependence, uncomplicated") == {"substance-use"}
    assert "ketamine-misuse" not in categories(kb, text="Ketamine-induced cystitis")
    assert "ketamine-uropathy" in categories(kb, text="Ketamine-induced cystitis")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("F10.20", {"substance-use"}),
        ("F18.20", {"substance-use"}),
        ("F10.929", {"substance-use"}),
        ("F10.90", {"substance-use-no-card"}),
        ("F10.11", {"substance-use-no-card"}),
        ("F10.21", {"substance-use-no-card"}),
        ("F12.91", {"substance-use-no-card"}),
        ("F17.210", {"substance-use-no-card"}),
        ("F12.159", {"substance-use", "psychosis"}),
        ("F19.950", {"substance-use", "psychosis"}),
    ],
)
def test_substance_use_codes(kb, code, expected):
    assert categories(kb, (ICD, code)) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("F30.10", {"bipolar", "mania"}),
        ("F30.3", {"bipolar", "bipolar-remission"}),
        ("F31.13", {"bipolar", "mania"}),
        ("F31.64", {"bipolar", "mania", "psychosis", "psychotic-features"}),
        ("F31.73", {"bipolar", "bipolar-remission"}),
        ("F34.0", {"bipolar", "cyclothymia"}),
        ("F31.81", {"bipolar", "bipolar-depression"}),
    ],
)
def test_bipolar_mania_and_remission_codes(kb, code, expected):
    assert categories(kb, (ICD, code)) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("I21.4", {"cardiovascular"}),
        ("I50.23", {"cardiovascular"}),
        ("I50.22", {"cardiovascular-stable"}),
        ("I50.9", {"cardiovascular-stable"}),
        ("I20.0", {"cardiovascular"}),
        ("I20.9", {"cardiovascular-stable"}),
        ("I61.9", {"cardiovascular-history"}),
        ("I71.40", {"cardiovascular-history"}),
        ("I25.2", set()),
        ("K70.31", {"hepatic"}),
        ("K74.60", {"hepatic-cirrhosis"}),
        ("R18.8", {"hepatic-decompensation-sign"}),
        ("G91.2", {"intracranial-benign"}),
        ("G91.1", {"intracranial-pressure"}),
        ("D32.0", {"intracranial-benign"}),
        ("C71.9", {"intracranial-pressure"}),
        ("Z39.1", {"lactation"}),
        ("N30.10", {"interstitial-cystitis"}),
    ],
)
def test_v2_code_lists(kb, code, expected):
    assert categories(kb, (ICD, code)) == expected


def test_old_myocardial_infarction_words_are_stable_disease_not_an_acute_event(kb):
    found = categories(kb, (ICD, "I25.2"), text="Old myocardial infarction")
    assert found == {"cardiovascular-stable"}


def test_contraindication_words_count_even_with_a_code_outside_the_set_and_say_so(kb):
    record = build_record(
        [condition("x", SCT, "999999", "Schizophrenia, paranoid type (local)")], kb, available=AVAILABLE
    )
    (fact,) = record.conditions
    assert fact.categories == {"psychosis"} and fact.named_categories == {"psychosis"}
    assert fact.recognition is Recognition.NAME
    coded = build_record(
        [condition("y", ICD, "F33.2", text="MDD, recurrent; schizoaffective features")], kb, available=AVAILABLE
    )
    (both,) = coded.conditions
    assert both.categories == {"depression", "psychosis"} and both.named_categories == {"psychosis"}
    assert both.recognition is Recognition.CODE


def test_an_excluded_code_stops_the_words_of_its_set(kb):
    assert "mania" not in categories(
        kb, (ICD, "F31.73"), text="Bipolar disorder, in partial remission, most recent episode manic"
    )
    assert "substance-use" not in categories(kb, (ICD, "F10.21"), text="Alcohol dependence, in remission")
    assert "pregnancy" not in categories(
        kb, (ICD, "O80"), text="Encounter for full-term uncomplicated delivery of pregnancy"
    )


def test_unstable_angina_is_not_stable_angina(kb):
    assert categories(kb, text="Unstable angina") == {"cardiovascular"}
    assert categories(kb, text="Stable angina pectoris") == {"cardiovascular-stable"}
    assert categories(kb, text="Normal pressure hydrocephalus") == {"intracranial-benign"}
