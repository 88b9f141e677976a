"""Conditions: knowledge-base categories by code (ICD-10-CM prefix, exact codes, code patterns) or by name.

Rules of recognition (clinical-rules.md §3 and §10; documented on the rules page and in the value sets):
* ICD-10-CM categories match their descendants by prefix; a code sent without its dot (``F331``) is read
  with it (``F33.1``). A value set's ``compose.exclude`` takes codes out again (``F30.3`` is a manic episode
  in remission); an excluded code is a deliberate decision and also stops the name fallback for that set.
* Names: the words of a concept in ``code.text`` / ``coding.display``. For a contraindication value set
  (``name_with_code``) the words count even when the condition carries a code outside the set (the card says
  "recognised by name"); for the other value sets only when no code of the condition is in any condition
  value set and the condition carries no ICD-10-CM code (ICD-10-CM is covered by the category prefixes, so an
  ICD-10-CM code outside them, ``G54.7``, is a deliberate exclusion, not a gap).
* Names never match negated or non-personal text: the words after "without", "no", "not", "negative for",
  "denies" (up to the next comma, semicolon or bracket), a clause that says "ruled out" or "rule out",
  family-history or screening text ("family history of", "screening for") and conditions coded as family
  history or screening (``condition-not-personal``: Z80-Z84, Z03, Z13, Z32.02). Words that appear only after
  "history of" count, but never as an active disorder (``ConditionFact.history_categories``).
* Refuted and entered-in-error conditions are dropped; an absent verificationStatus counts as confirmed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cds_service.knowledge.model import CodeRule, Knowledge, ValueSet
from cds_service.record.dates import parse_fhir_datetime, period_bounds
from cds_service.record.fhirdata import codes_of, resource_id, status_code, texts_of
from cds_service.record.model import Code, ConditionFact, Recognition
from cds_service.terminology.codes import ICD10CM

NON_CONDITION_PREFIXES = ("obs-", "result-", "score-", "order-", "reaction-")  # value sets that are not conditions
NOT_PERSONAL: Final = "condition-not-personal"  # family history and screening: never a category
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_NEGATION = re.compile(r"\b(?:without|w/o|not|no|negative for|denies|denied)\b[^,;()]*")
_RULED_OUT = re.compile(r"[^,;()]*\b(?:ruled out|rule out|r/o)\b[^,;()]*")
_HISTORY = re.compile(r"\b(?:history of|hx of|h/o)\b[^,;()]*")


@dataclass(frozen=True)
class Categories:
    """How one condition was recognised: every category, those by name only, those from "history of" words."""

    all: frozenset[str]
    named: frozenset[str]
    history: frozenset[str]

    @property
    def recognition(self) -> Recognition:
        return Recognition.NAME if self.all and self.all == self.named else Recognition.CODE


_NONE: Final = Categories(frozenset(), frozenset(), frozenset())


@dataclass(frozen=True)
class NameIndex:
    """Which value sets may name a text: those with one of their ``text_patterns`` in it (a substring), and
    every one with ``text_regexes``. ``ValueSet.text_fits`` of any other is False for that text.

    Found without one large alternation (which Python's ``re`` tries word by word at every position of the
    text: ~60 µs for a condition name that holds none): a substring is looked up by its first three
    characters, which a text that holds it has among its own.
    """

    by_start: Mapping[str, tuple[tuple[str, str], ...]]  # first three characters -> (substring, value-set key)
    short: tuple[tuple[str, str], ...]  # substrings under three characters, with their value-set keys
    regexes: tuple[re.Pattern[str], ...]
    regex_keys: frozenset[str]  # the value sets with text_regexes

    @classmethod
    def of(cls, sets: Iterable[ValueSet]) -> NameIndex:
        by_start: dict[str, list[tuple[str, str]]] = {}
        short: list[tuple[str, str]] = []
        regexes: list[re.Pattern[str]] = []
        regex_keys: set[str] = set()
        for vs in sets:
            for word in vs.text_patterns:
                if len(word) < 3:
                    short.append((word, vs.key))
                else:
                    by_start.setdefault(word[:3], []).append((word, vs.key))
            if vs.text_regexes:
                regexes.extend(vs.text_regexes)
                regex_keys.add(vs.key)
        return cls({k: tuple(v) for k, v in by_start.items()}, tuple(short), tuple(regexes), frozenset(regex_keys))

    def _words_in(self, text: str) -> Iterator[tuple[str, str]]:
        yield from self.short
        for start in {text[i : i + 3] for i in range(len(text) - 2)} & self.by_start.keys():
            yield from self.by_start[start]

    def search(self, text: str) -> bool:
        """``text`` holds a word of one of the value sets."""
        return any(word in text for word, _key in self._words_in(text)) or any(r.search(text) for r in self.regexes)

    def candidates(self, texts: Iterable[str]) -> set[str]:
        """The keys of the value sets that may name one of ``texts``."""
        keys = set(self.regex_keys)
        for text in texts:
            keys.update(key for word, key in self._words_in(text) if word in text)
        return keys


@dataclass(frozen=True)
class RuleIndex:
    """Which of many value sets' code rules take a code: the test of ``CodeRule.matches``, by lookups instead
    of asking each rule in turn (each loops over its prefixes and patterns)."""

    exact: Mapping[tuple[str, str], frozenset[str]]  # (system, code) -> value-set keys
    prefixes: Mapping[tuple[str, str], frozenset[str]]  # (system, prefix) -> value-set keys
    longest: int  # the longest prefix
    patterns: tuple[tuple[str, re.Pattern[str], str], ...]  # (system, whole-code pattern, value-set key)

    @classmethod
    def of(cls, rules: Iterable[tuple[str, CodeRule]]) -> RuleIndex:
        exact: dict[tuple[str, str], set[str]] = {}
        prefixes: dict[tuple[str, str], set[str]] = {}
        patterns: list[tuple[str, re.Pattern[str], str]] = []
        for key, rule in rules:
            for pair in rule.codes:
                exact.setdefault(pair, set()).add(key)
            for pair in rule.prefixes:
                prefixes.setdefault(pair, set()).add(key)
            patterns.extend((system, pattern, key) for system, pattern in rule.patterns)
        return cls(
            exact={k: frozenset(v) for k, v in exact.items()},
            prefixes={k: frozenset(v) for k, v in prefixes.items()},
            longest=max((len(prefix) for _system, prefix in prefixes), default=0),
            patterns=tuple(patterns),
        )

    def keys(self, code: Code) -> set[str]:
        """The keys of the value sets whose rule takes ``code``."""
        system, value = code.system, code.code
        found = set(self.exact.get((system, value), ()))
        for end in range(min(len(value), self.longest) + 1):
            found.update(self.prefixes.get((system, value[:end]), ()))
        for pattern_system, pattern, key in self.patterns:
            if key not in found and system == pattern_system and pattern.fullmatch(value):
                found.add(key)
        return found


@dataclass(frozen=True)
class ConditionIndex:
    """The condition value sets of one Knowledge, indexed for fast lookup."""

    exact: Mapping[tuple[str, str], frozenset[str]]
    icd_prefixes: Mapping[str, frozenset[str]]
    by_pattern: RuleIndex  # the includes of value sets with code patterns
    exclusions: RuleIndex  # the compose.exclude rules
    named: tuple[ValueSet, ...]  # value sets with words to match
    names: NameIndex  # the words of the value sets in ``named``
    not_personal: ValueSet | None

    @classmethod
    def for_knowledge(cls, kb: Knowledge) -> ConditionIndex:
        """The index of ``kb``, built on first use and kept with it (the knowledge base is read-only)."""
        return kb.derived("record.condition-index", cls.of)

    @classmethod
    def of(cls, kb: Knowledge) -> ConditionIndex:
        exact: dict[tuple[str, str], set[str]] = {}
        prefixes: dict[str, set[str]] = {}
        sets = [vs for key, vs in kb.valuesets.items() if not key.startswith(NON_CONDITION_PREFIXES)]
        categories = [vs for vs in sets if vs.key != NOT_PERSONAL]
        for vs in categories:
            for system, code in vs.codes:
                exact.setdefault((system, normalize_icd(code) if system == ICD10CM else code), set()).add(vs.key)
            for system, prefix in vs.prefixes:
                if system == ICD10CM:
                    prefixes.setdefault(normalize_icd(prefix), set()).add(vs.key)
        named = tuple(vs for vs in categories if vs.text_patterns or vs.text_regexes)
        return cls(
            exact={k: frozenset(v) for k, v in exact.items()},
            icd_prefixes={k: frozenset(v) for k, v in prefixes.items()},
            by_pattern=RuleIndex.of((vs.key, vs.include) for vs in categories if vs.patterns),
            exclusions=RuleIndex.of((vs.key, vs.exclude) for vs in categories if vs.exclude),
            named=named,
            names=NameIndex.of(named),
            not_personal=kb.valuesets.get(NOT_PERSONAL),
        )

    def categories_for_codes(self, codes: tuple[Code, ...]) -> frozenset[str]:
        return self._by_code(tuple(_normalized(c) for c in codes))[0]

    def _by_code(self, codes: tuple[Code, ...]) -> tuple[frozenset[str], frozenset[str]]:
        """(categories taken by code, categories whose value set excludes one of the codes)."""
        found: set[str] = set()
        excluded: set[str] = set()
        for c in codes:
            if c.system == ICD10CM:
                found |= self.exact.get((ICD10CM, c.code), frozenset())
                for end in range(1, len(c.code) + 1):
                    found |= self.icd_prefixes.get(c.code[:end], frozenset())
            else:
                found |= self.exact.get((c.system, c.code), frozenset())
            excluding = self.exclusions.keys(c)
            found |= self.by_pattern.keys(c) - excluding  # a value set takes a code it does not exclude
            excluded |= excluding
        return frozenset(found - excluded), frozenset(excluded)

    def categories_for_text(self, texts: tuple[str, ...]) -> frozenset[str]:
        """Categories named by ``texts`` (negated, ruled-out and non-personal text never counts)."""
        return self.classify((), texts).all

    def classify(self, codes: tuple[Code, ...], texts: tuple[str, ...]) -> Categories:
        """Every category of a condition with these codes and texts (see the module docstring)."""
        codes = tuple(_normalized(c) for c in codes)
        texts = tuple(dict.fromkeys(texts))  # a display repeats the text: each is judged once
        if self.not_personal is not None and self.not_personal.matches_code(codes):
            return _NONE
        by_code, excluded = self._by_code(codes)
        current, past = _cleaned(texts)
        if not any(self.names.search(t) for t in past) or self._not_personal_text(past):
            return Categories(by_code, frozenset(), frozenset()) if by_code else _NONE
        name_only = not by_code and not excluded and not any(c.system == ICD10CM for c in codes)
        candidates = self.names.candidates(dict.fromkeys(current + past))
        named: set[str] = set()
        history: set[str] = set()
        for vs in self.named:
            if vs.key in by_code or vs.key in excluded or not (vs.name_with_code or name_only):
                continue
            if vs.key not in candidates:  # none of its words in any text: text_fits is False for each
                continue
            if any(vs.text_fits(t) for t in current):
                named.add(vs.key)
            elif any(vs.text_fits(t) for t in past):
                named.add(vs.key)
                history.add(vs.key)
        if not named:
            return Categories(by_code, frozenset(), frozenset()) if by_code else _NONE
        return Categories(by_code | named, frozenset(named), frozenset(history))

    def _not_personal_text(self, texts: tuple[str, ...]) -> bool:
        return self.not_personal is not None and any(self.not_personal.text_fits(t) for t in texts)


def _normalized(code: Code) -> Code:
    return Code(ICD10CM, normalize_icd(code.code), code.display) if code.system == ICD10CM else code


def _cleaned(texts: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(texts without negated, ruled-out and "history of" phrases; texts without negated/ruled-out ones)."""
    past = tuple(strip_negations(t) for t in texts)
    return tuple(_HISTORY.sub(" ", t) for t in past), past


def normalize_icd(code: str) -> str:
    """ICD-10-CM with its dot and upper case: ``f331`` -> ``F33.1``."""
    code = code.strip().upper()
    if "." not in code and len(code) > 3:
        return f"{code[:3]}.{code[3:]}"
    return code


def strip_negations(text: str) -> str:
    """Lower-case text with negated and ruled-out phrases removed (for the name fallback only)."""
    low = text.lower()
    if "rule" in low or "r/o" in low:  # every ruled-out phrase holds one; the search itself is slow
        low = _RULED_OUT.sub(" ", low)
    return _NEGATION.sub(" ", low)


def raw_categories(
    resource: Mapping[str, Any], index: ConditionIndex, seen: dict[Any, Categories] | None = None
) -> Categories:
    """Categories of a raw Condition (cheap: used as the pre-filter before validation).

    ``seen``: the categories already found in this record build, by codes and texts (a heavy record repeats
    its problem list); kept by the caller, never beyond one build.
    """
    code = resource.get("code")
    codes, texts = codes_of(code), texts_of(code)
    if seen is None:
        return index.classify(codes, texts)
    key = (tuple((c.system, c.code) for c in codes), texts)  # what classify reads of them
    found = seen.get(key)
    if found is None:
        found = seen[key] = index.classify(codes, texts)
    return found


def is_ignored(resource: Mapping[str, Any]) -> bool:
    """Refuted or entered-in-error: ignored everywhere."""
    return status_code(resource.get("verificationStatus")) in IGNORED_VERIFICATION


def condition_fact(resource: Mapping[str, Any], categories: Categories) -> ConditionFact:
    onset = parse_fhir_datetime(resource.get("onsetDateTime")) or period_bounds(resource.get("onsetPeriod"))[0]
    abatement = parse_fhir_datetime(resource.get("abatementDateTime"))
    if abatement is None:
        start, end = period_bounds(resource.get("abatementPeriod"))
        abatement = end or start
    code = resource.get("code")
    text = code.get("text") if isinstance(code, Mapping) else None
    return ConditionFact(
        resource_id=resource_id(resource),
        codes=codes_of(code),
        text=text if isinstance(text, str) and text else None,
        clinical_status=status_code(resource.get("clinicalStatus")),
        verification_status=status_code(resource.get("verificationStatus")),
        onset=onset,
        abatement=abatement,
        recorded=parse_fhir_datetime(resource.get("recordedDate")),
        categories=categories.all,
        recognition=categories.recognition,
        named_categories=categories.named,
        history_categories=categories.history,
    )
