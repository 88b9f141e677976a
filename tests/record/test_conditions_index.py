"""The condition index finds categories by lookups (``RuleIndex``, ``NameIndex``, the ruled-out pre-check, the
per-build memo): on every condition of the fixture library and on generated codes and texts it gives exactly
what asking each value set in turn gives (``ValueSet.matches_code``/``excludes_code``/``text_fits``, the
cleaning regular expressions applied unconditionally)."""

from __future__ import annotations

import json
import random
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.knowledge.model import Knowledge, ValueSet
from cds_service.record import conditions as cond
from cds_service.record.conditions import Categories, ConditionIndex, RuleIndex, strip_negations
from cds_service.record.fhirdata import codes_of, texts_of
from cds_service.record.model import Code
from cds_service.terminology.codes import ICD10CM

ROOT = Path(__file__).resolve().parents[2]
NOT_CONDITIONS = cond.NON_CONDITION_PREFIXES


def category_sets(kb: Knowledge) -> list[ValueSet]:
    return [vs for key, vs in kb.valuesets.items() if not key.startswith(NOT_CONDITIONS) and key != cond.NOT_PERSONAL]


def plain_strip(text: str) -> str:
    return cond._NEGATION.sub(" ", cond._RULED_OUT.sub(" ", text.lower()))


def plain_classify(kb: Knowledge, codes: tuple[Code, ...], texts: tuple[str, ...]) -> Categories:
    """classify as the catalogue states it: every value set asked in turn, every pattern searched."""
    codes = tuple(cond._normalized(c) for c in codes)
    sets = category_sets(kb)
    not_personal = kb.valuesets.get(cond.NOT_PERSONAL)
    none = Categories(frozenset(), frozenset(), frozenset())
    if not_personal is not None and not_personal.matches_code(codes):
        return none
    index = ConditionIndex.for_knowledge(kb)
    found: set[str] = set()
    for c in codes:  # exact codes and ICD-10-CM categories (the part the index always looked up)
        if c.system == ICD10CM:
            found |= index.exact.get((ICD10CM, c.code), frozenset())
            for end in range(1, len(c.code) + 1):
                found |= index.icd_prefixes.get(c.code[:end], frozenset())
        else:
            found |= index.exact.get((c.system, c.code), frozenset())
    found |= {vs.key for vs in sets if vs.patterns and vs.matches_code(codes)}
    excluded = {vs.key for vs in sets if vs.exclude and vs.excludes_code(codes)}
    by_code = frozenset(found - excluded)
    past = tuple(plain_strip(t) for t in texts)
    current = tuple(cond._HISTORY.sub(" ", t) for t in past)
    named = [vs for vs in sets if vs.text_patterns or vs.text_regexes]
    words = [re.escape(p) for vs in named for p in vs.text_patterns] + [r.pattern for vs in named
                                                                        for r in vs.text_regexes]  # fmt: skip
    any_word = re.compile("|".join(words) or "(?!)", re.IGNORECASE)
    personal = not (not_personal is not None and any(not_personal.text_fits(t) for t in past))
    if not any(any_word.search(t) for t in past) or not personal:
        return Categories(by_code, frozenset(), frozenset()) if by_code else none
    name_only = not by_code and not excluded and not any(c.system == ICD10CM for c in codes)
    hits: set[str] = set()
    history: set[str] = set()
    for vs in named:
        if vs.key in by_code or vs.key in excluded or not (vs.name_with_code or name_only):
            continue
        if any(vs.text_fits(t) for t in current):
            hits.add(vs.key)
        elif any(vs.text_fits(t) for t in past):
            hits.add(vs.key)
            history.add(vs.key)
    if not hits:
        return Categories(by_code, frozenset(), frozenset()) if by_code else none
    return Categories(by_code | hits, frozenset(hits), frozenset(history))


@cache
def library_conditions() -> list[dict[str, Any]]:
    """The code of every Condition (and allergy) in the fixture library's prefetch, once each."""
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "fhir_fixtures" / "requests").glob("*/order-sign.json")):
        prefetch = json.loads(path.read_text()).get("prefetch") or {}
        for key in ("conditions", "allergies"):
            for entry in (prefetch.get(key) or {}).get("entry", []):
                code = entry.get("resource", {}).get("code")
                seen.setdefault(json.dumps(code, sort_keys=True), code)
    return list(seen.values())


def value_set_words(kb: Knowledge) -> list[str]:
    words = [w for vs in category_sets(kb) for w in vs.text_patterns]
    return words + [w for vs in kb.valuesets.values() for w in vs.text_patterns if vs.key == cond.NOT_PERSONAL]


def value_set_codes(kb: Knowledge) -> list[Code]:
    """Codes each rule of every condition value set takes or leaves out, and their neighbours."""
    out: list[Code] = []
    for vs in kb.valuesets.values():
        for rule in (vs.include, vs.exclude):
            out += [Code(s, c) for s, c in rule.codes]
            for system, prefix in rule.prefixes:
                out += [Code(system, prefix), Code(system, prefix + "9"), Code(system, prefix[:-1] or prefix)]
                out += [Code(system, prefix + ".81"), Code("http://snomed.info/sct", prefix)]
    return out


def test_every_library_condition_is_classified_as_the_catalogue_states(kb: Knowledge) -> None:
    index = ConditionIndex.for_knowledge(kb)
    assert library_conditions()
    for code in library_conditions():
        codes, texts = codes_of(code), texts_of(code)
        assert index.classify(codes, texts) == plain_classify(kb, codes, texts), code


def test_every_value_set_code_is_classified_as_the_catalogue_states(kb: Knowledge) -> None:
    index = ConditionIndex.for_knowledge(kb)
    for c in value_set_codes(kb):
        for codes in ((c,), (c, Code(ICD10CM, "F33.1")), (Code(ICD10CM, c.code.replace(".", "")),)):
            assert index.classify(codes, ()) == plain_classify(kb, codes, ()), codes


def test_the_rule_index_takes_what_each_rule_takes(kb: Knowledge) -> None:
    rules = [(f"{vs.key}/{part}", rule) for vs in kb.valuesets.values()
             for part, rule in (("include", vs.include), ("exclude", vs.exclude)) if rule]  # fmt: skip
    index = RuleIndex.of(rules)
    for code in [*value_set_codes(kb), Code(ICD10CM, ""), Code("", "F33")]:
        assert index.keys(code) == {key for key, rule in rules if rule.matches(code)}, code


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_generated_names_are_classified_as_the_catalogue_states(kb: Knowledge, data: st.DataObject) -> None:
    words = value_set_words(kb)
    pieces = st.one_of(
        st.sampled_from(words), st.sampled_from(words).map(str.upper), st.sampled_from(words).map(str.title),
        st.sampled_from(["no", "not", "without", "denies", "ruled out", "rule out", "r/o", "history of", "h/o",
                         "family history of", "screening for", "in remission", ",", ";", "(", ")", "-", "unspecified",
                         "acute", "chronic", "old", "ketamine", "stable", "benign"]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz ſıK", max_size=8),
    )  # fmt: skip
    texts = tuple(" ".join(data.draw(st.lists(pieces, min_size=1, max_size=6))) for _ in range(data.draw(
        st.integers(0, 3))))  # fmt: skip
    codes = tuple(data.draw(st.lists(st.sampled_from([*value_set_codes(kb), Code(ICD10CM, "I10")]), max_size=2)))
    index = ConditionIndex.for_knowledge(kb)
    assert index.classify(codes, texts) == plain_classify(kb, codes, texts)


@pytest.mark.parametrize("text", ["Bipolar disorder ruled out", "Rule out hydrocephalus", "r/o psychosis, mania",
                                  "RULED OUT stroke; angina", "no rules", "Schedule", "bipolar", ""])  # fmt: skip
def test_the_ruled_out_pre_check_keeps_what_the_patterns_remove(text: str) -> None:
    assert strip_negations(text) == plain_strip(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["rule", "ruled out", "rule out", "r/o", "R/O", "not", "no", ",", "(", "x", " ",
                                 "schedule", "overruled", "out"]), max_size=8).map(" ".join))  # fmt: skip
def test_negations_are_stripped_as_the_patterns_say(text: str) -> None:
    assert strip_negations(text) == plain_strip(text)


def test_a_record_classifies_each_distinct_condition_once(kb: Knowledge, monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_service.record.builder import build_record

    calls: list[Any] = []
    original = ConditionIndex.classify
    monkeypatch.setattr(ConditionIndex, "classify", lambda self, c, t: calls.append(c) or original(self, c, t))
    rng = random.Random(3)
    codes = library_conditions()[:6]
    resources = [{"resourceType": "Condition", "id": f"c{i}", "code": rng.choice(codes),
                  "subject": {"reference": "Patient/p"}} for i in range(40)]  # fmt: skip
    record = build_record(resources, kb, available=frozenset())
    assert len(calls) == len({json.dumps(r["code"], sort_keys=True) for r in resources})
    by_id = {r["id"]: r["code"] for r in resources}
    index = ConditionIndex.for_knowledge(kb)
    assert record.conditions
    for fact in record.conditions:
        code = by_id[fact.resource_id]
        assert fact.categories == original(index, codes_of(code), texts_of(code)).all
