"""Conditions: categories by ICD-10-CM prefix, SNOMED code or name; refuted/entered-in-error dropped."""

from __future__ import annotations

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import PatientRecord, Recognition
from tests.record.record_samples import ICD, SCT, condition

AVAILABLE = frozenset({kinds.PATIENT, kinds.CONDITIONS})


def _record(kb: Knowledge, *resources: dict) -> PatientRecord:
    return build_record(list(resources), kb, available=AVAILABLE)


def test_icd_category_prefix_and_snomed_codes(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("c1", ICD, "F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
        condition("c2", SCT, "13746004", "Bipolar disorder (disorder)"),
        condition("c3", ICD, "F3340"),  # sent without the dot
    )
    by_id = {c.resource_id: c for c in record.conditions}
    assert by_id["c1"].categories == {"depression"}
    assert by_id["c2"].categories == {"bipolar"}
    assert by_id["c3"].categories == {"depression"}
    assert all(c.recognition is Recognition.CODE for c in record.conditions)


def test_psychotic_depression_is_in_depression_psychosis_and_psychotic_features(kb: Knowledge) -> None:
    record = _record(kb, condition("c1", ICD, "F33.3"))
    assert record.conditions[0].categories == {"depression", "psychosis", "psychotic-features"}


def test_missing_verification_status_counts_refuted_and_entered_in_error_do_not(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("ok", SCT, "58214004", verification=None),
        condition("confirmed", SCT, "58214004", verification="confirmed"),
        condition("refuted", SCT, "58214004", verification="refuted"),
        condition("eie", SCT, "58214004", verification="entered-in-error"),
    )
    assert sorted(c.resource_id or "" for c in record.conditions) == ["confirmed", "ok"]
    assert len(record.conditions_in("psychosis")) == 2


def test_history_kept_with_its_clinical_status(kb: Knowledge) -> None:
    record = _record(kb, condition("old", ICD, "F20.9", clinical="resolved", abatementDateTime="2015-02-01"))
    fact = record.conditions[0]
    assert fact.clinical_status == "resolved" and not fact.is_active
    assert record.conditions_in("psychosis") == ()
    assert record.conditions_in("psychosis", active_only=False) == (fact,)
    assert fact.abatement is not None and fact.abatement.year == 2015


def test_name_fallback_for_uncoded_or_unknown_snomed(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("t1", None, None, text="Treatment-resistant depression"),
        condition("t2", SCT, "35489007", "Depressive disorder", text="Major depressive disorder, recurrent"),
    )
    assert {c.resource_id: c.categories for c in record.conditions} == {"t1": {"depression"}, "t2": {"depression"}}
    assert all(c.recognition is Recognition.NAME for c in record.conditions)


def test_name_fallback_ignores_negated_phrases(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("t1", None, None, text="Major depression without psychotic features"),
        condition("t2", None, None, text="Not pregnant"),
    )
    cats = {c.resource_id: c.categories for c in record.conditions}
    assert cats == {"t1": {"depression"}}


def test_icd_codes_outside_the_indication_categories_are_not_read_by_indication_words(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("a", ICD, "F41.1", "Generalized anxiety disorder", text="Major depression"),
        condition("b", ICD, "G43.D0", "Abdominal migraine, not intractable"),
    )
    assert record.conditions == ()


def test_depression_unspecified_dysthymia_and_bipolar_ii_are_depressive_indications(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("a", ICD, "F32.A", "Depression, unspecified"),
        condition("b", ICD, "F34.1", "Dysthymic disorder"),
        condition("c", ICD, "F31.81", "Bipolar II disorder"),
    )
    cats = {c.resource_id: c.categories for c in record.conditions}
    assert cats == {"a": {"depression"}, "b": {"depression"}, "c": {"bipolar", "bipolar-depression"}}


def test_nicotine_is_a_summary_line_category_not_a_substance_use_disorder(kb: Knowledge) -> None:
    record = _record(kb, condition("c", ICD, "F17.210", "Nicotine dependence, cigarettes, uncomplicated"))
    assert record.conditions[0].categories == {"substance-use-no-card"}


def test_conditions_without_a_category_are_not_validated(kb: Knowledge) -> None:
    invalid_unrelated = condition("x", SCT, "38341003", "Hypertension", onsetDateTime="last spring")
    invalid_related = condition("y", SCT, "58214004", "Schizophrenia", onsetDateTime="last spring")
    record = _record(kb, invalid_unrelated, invalid_related)
    assert record.conditions == ()
    assert [(s.resource_id, s.problem.split(":")[0]) for s in record.skipped] == [("y", "onsetDateTime")]
    assert "last spring" not in record.skipped[0].problem  # no values (PHI) in the problem text


def test_ketamine_misuse_is_not_also_substance_use(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("k", SCT, "724715004", "Ketamine dependence (disorder)", clinical="remission"),
        condition("a", ICD, "F10.20"),
    )
    cats = {c.resource_id: c.categories for c in record.conditions}
    assert cats == {"k": {"ketamine-misuse"}, "a": {"substance-use"}}


def test_sorted_newest_first_undated_last(kb: Knowledge) -> None:
    record = _record(
        kb,
        condition("undated", ICD, "F33.1"),
        condition("old", ICD, "F33.1", onsetDateTime="2019-01-01"),
        condition("new", ICD, "F33.1", recordedDate="2025-06-01"),
    )
    assert [c.resource_id for c in record.conditions] == ["new", "old", "undated"]
