"""Conditions: knowledge-base categories by code (ICD-10-CM prefix, exact codes) or, failing that, by name.

Rules of recognition (documented on the rules page and in the value sets):
* ICD-10-CM categories match their descendants by prefix; a code sent without its dot (``F331``) is read
  with it (``F33.1``).
* The name fallback (value-set text patterns over ``code.text`` and ``coding.display``) runs only when no
  code of the condition is in any condition value set **and** the condition carries no ICD-10-CM code:
  ICD-10-CM is covered completely by the category prefixes, so an ICD-10-CM code outside them (``F32.A``,
  ``G54.7``) is a deliberate exclusion, not a gap. Negated phrases ("without psychotic features",
  "not pregnant") are removed before matching.
* Refuted and entered-in-error conditions are dropped; an absent verificationStatus counts as confirmed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.knowledge.model import ICD10CM, Knowledge
from cds_service.record.dates import parse_fhir_datetime, period_bounds
from cds_service.record.fhirdata import codes_of, resource_id, status_code, texts_of
from cds_service.record.model import Code, ConditionFact, Recognition

NON_CONDITION_PREFIXES = ("obs-", "result-", "score-")  # observation/result value sets live beside them
IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
_NEGATION = re.compile(r"\b(?:without|w/o|not|no|negative for|denies|ruled out)\b[^,;()]*")


@dataclass(frozen=True)
class ConditionIndex:
    """The condition value sets of one Knowledge, indexed for fast lookup."""

    exact: Mapping[tuple[str, str], frozenset[str]]
    icd_prefixes: Mapping[str, frozenset[str]]
    text_patterns: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def for_knowledge(cls, kb: Knowledge) -> ConditionIndex:
        """The index of ``kb``, built on first use and kept with it (the knowledge base is read-only)."""
        return kb.derived("record.condition-index", cls.of)

    @classmethod
    def of(cls, kb: Knowledge) -> ConditionIndex:
        exact: dict[tuple[str, str], set[str]] = {}
        prefixes: dict[str, set[str]] = {}
        patterns: list[tuple[str, tuple[str, ...]]] = []
        for key, vs in kb.valuesets.items():
            if key.startswith(NON_CONDITION_PREFIXES):
                continue
            for system, code in vs.codes:
                exact.setdefault((system, normalize_icd(code) if system == ICD10CM else code), set()).add(key)
            for system, prefix in vs.prefixes:
                if system == ICD10CM:
                    prefixes.setdefault(normalize_icd(prefix), set()).add(key)
            if vs.text_patterns:
                patterns.append((key, vs.text_patterns))
        return cls(
            exact={k: frozenset(v) for k, v in exact.items()},
            icd_prefixes={k: frozenset(v) for k, v in prefixes.items()},
            text_patterns=tuple(patterns),
        )

    def categories_for_codes(self, codes: tuple[Code, ...]) -> frozenset[str]:
        found: set[str] = set()
        for c in codes:
            if c.system == ICD10CM:
                code = normalize_icd(c.code)
                found |= self.exact.get((ICD10CM, code), frozenset())
                for end in range(1, len(code) + 1):
                    found |= self.icd_prefixes.get(code[:end], frozenset())
            else:
                found |= self.exact.get((c.system, c.code), frozenset())
        return frozenset(found)

    def categories_for_text(self, texts: tuple[str, ...]) -> frozenset[str]:
        cleaned = [strip_negations(t) for t in texts]
        return frozenset(key for key, patterns in self.text_patterns if any(p in t for t in cleaned for p in patterns))


def normalize_icd(code: str) -> str:
    """ICD-10-CM with its dot and upper case: ``f331`` -> ``F33.1``."""
    code = code.strip().upper()
    if "." not in code and len(code) > 3:
        return f"{code[:3]}.{code[3:]}"
    return code


def strip_negations(text: str) -> str:
    """Lower-case text with negated phrases removed (for the name fallback only)."""
    return _NEGATION.sub(" ", text.lower())


def raw_categories(resource: Mapping[str, Any], index: ConditionIndex) -> tuple[frozenset[str], Recognition]:
    """Categories of a raw Condition (cheap: used as the pre-filter before validation)."""
    code = resource.get("code")
    codes = codes_of(code)
    by_code = index.categories_for_codes(codes)
    if by_code:
        return by_code, Recognition.CODE
    if any(c.system == ICD10CM for c in codes):
        return frozenset(), Recognition.CODE
    return index.categories_for_text(texts_of(code)), Recognition.NAME


def is_ignored(resource: Mapping[str, Any]) -> bool:
    """Refuted or entered-in-error: ignored everywhere."""
    return status_code(resource.get("verificationStatus")) in IGNORED_VERIFICATION


def condition_fact(resource: Mapping[str, Any], categories: frozenset[str], recognition: Recognition) -> ConditionFact:
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
        categories=categories,
        recognition=recognition,
    )
