"""In-memory form of the knowledge base. Built by ``knowledge.loader``; read-only afterwards."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, TypeVar, cast

from cds_service.terminology.codes import Code

T = TypeVar("T")


@dataclass(frozen=True)
class CodeRule:
    """Which codes a value set takes (``compose.include``) or leaves out (``compose.exclude``).

    ``codes``: exact (system, code) pairs. ``prefixes``: (system, prefix) pairs from ``concept is-a`` filters
    (ICD-10-CM categories match their descendants: "F33" matches "F33.1"). ``patterns``: (system, compiled
    regex) pairs from ``code regex`` filters, matched against the whole code (structural rules such as "the
    final character denotes the puerperium").
    """

    codes: frozenset[tuple[str, str]] = frozenset()
    prefixes: tuple[tuple[str, str], ...] = ()
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def matches(self, code: Code) -> bool:
        if (code.system, code.code) in self.codes:
            return True
        for system, prefix in self.prefixes:
            if code.system == system and code.code.startswith(prefix):
                return True
        return any(code.system == system and pattern.fullmatch(code.code) for system, pattern in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.codes or self.prefixes or self.patterns)


@dataclass(frozen=True)
class ValueSet:
    """A FHIR ValueSet reduced to a matcher.

    ``codes``/``prefixes``/``patterns``: what ``compose.include`` takes (see ``CodeRule``); ``exclude`` what
    ``compose.exclude`` leaves out again (an excluded code is a deliberate decision: it also stops the name
    fallback for this value set). ``text_patterns``: lower-case substrings, and ``text_regexes`` regular
    expressions, matched against display/text for the name fallback (reported as such); ``text_excludes``:
    regular expressions that stop the name fallback when they match (e.g. "normal pressure" for hydrocephalus).
    ``name_with_code``: the words are matched even when the condition carries a code outside this value set
    (clinical-rules.md §3: every contraindication); otherwise only when no code is recognised at all.
    """

    key: str  # e.g. "psychosis"
    url: str
    version: str
    title: str
    source: str  # provenance in plain words (seed file, terminology.md row, VSAC OID)
    codes: frozenset[tuple[str, str]]
    prefixes: tuple[tuple[str, str], ...] = ()
    text_patterns: tuple[str, ...] = ()
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    exclude: CodeRule = field(default_factory=CodeRule)
    text_regexes: tuple[re.Pattern[str], ...] = ()
    text_excludes: tuple[re.Pattern[str], ...] = ()
    name_with_code: bool = False

    @cached_property
    def include(self) -> CodeRule:
        return CodeRule(self.codes, self.prefixes, self.patterns)

    def code_verdict(self, code: Code) -> bool | None:
        """True: the value set takes the code; False: it excludes it explicitly; None: it says nothing."""
        if self.exclude and self.exclude.matches(code):
            return False
        return True if self.include.matches(code) else None

    def matches_code(self, codes: Iterable[Code]) -> bool:
        return any(self.code_verdict(c) for c in codes)

    def excludes_code(self, codes: Iterable[Code]) -> bool:
        return any(self.code_verdict(c) is False for c in codes)

    def matches_text(self, texts: Iterable[str | None]) -> bool:
        """The words of the concept in one of ``texts`` (already lower-case and cleaned by the caller, or raw)."""
        return any(t and self.text_fits(t.lower()) for t in texts)

    def text_fits(self, low: str) -> bool:
        """``low`` (lower case) names the concept and no exclusion pattern applies."""
        if not (self._any_pattern.search(low) or any(r.search(low) for r in self.text_regexes)):
            return False
        return not any(r.search(low) for r in self.text_excludes)

    @cached_property
    def _any_pattern(self) -> re.Pattern[str]:
        """One search for "any of ``text_patterns`` is a substring" (a loop of ``in`` tests costs ten times more
        over a contraindication's dozens of words); never matches when there are none."""
        return re.compile("|".join(re.escape(p) for p in self.text_patterns) or r"(?!)")


@dataclass(frozen=True)
class Ingredient:
    key: str  # "sertraline"
    rxcui: str | None  # None where terminology.md marks it UNVERIFIED
    name: str
    roles: frozenset[str]  # antidepressant | mood-stabilizer-standard | mood-stabilizer-other | ketamine | esketamine
    drug_class: str | None  # SSRI, SNRI, TCA, MAOI, NDRI, NaSSA, SARI, multimodal, ...
    min_daily_dose_mg: float | None  # adequate-trial floor; None: no floor known (trial "dose unverified")
    synonyms: tuple[str, ...] = ()  # lower-case names for the name fallback
    source: str = ""


@dataclass(frozen=True)
class Product:
    rxcui: str
    display: str
    ingredients: tuple[str, ...]  # ingredient keys (combination products list several)
    strength_mg: Mapping[str, float] = field(default_factory=dict)  # per ingredient, per unit (tablet...)


@dataclass(frozen=True)
class MedicationCatalog:
    ingredients: Mapping[str, Ingredient]
    products: Mapping[tuple[str, str], Product]  # (system, code) -> product; RxNorm SCD/SBD and NDC
    ingredient_codes: Mapping[tuple[str, str], str]  # (system, code) -> ingredient key (IN/PIN codes)

    def ingredients_for_codes(self, codes: Iterable[Code]) -> tuple[str, ...]:
        found: list[str] = []
        for c in codes:
            key = (c.system, c.code)
            if key in self.ingredient_codes:
                found.append(self.ingredient_codes[key])
            elif key in self.products:
                found.extend(self.products[key].ingredients)
        return tuple(dict.fromkeys(found))

    def ingredients_for_text(self, texts: Iterable[str | None]) -> tuple[str, ...]:
        """Name fallback: whole-word ingredient names or synonyms in display/text.

        Whole word: the characters either side are not alphanumeric, so esketamine is not ketamine.
        """
        names = self._names
        found: list[str] = []
        for t in texts:
            if not t:
                continue
            keys = {key for m in names.pattern.finditer(t.lower()) for key in names.ingredients[m.group(1)]}
            found.extend(sorted(keys, key=names.order.__getitem__))
        return tuple(dict.fromkeys(found))

    @cached_property
    def _names(self) -> _NameIndex:
        return _NameIndex.of(self.ingredients.values())


@dataclass(frozen=True)
class _NameIndex:
    """Every ingredient name and synonym in one compiled pattern (built once per catalogue)."""

    pattern: re.Pattern[str]  # finds, at each word start, the longest name there that ends a word
    ingredients: Mapping[str, frozenset[str]]  # name -> keys of the ingredients it or a name within it names
    order: Mapping[str, int]  # ingredient key -> catalogue position (the order results are listed in)

    @classmethod
    def of(cls, ingredients: Iterable[Ingredient]) -> _NameIndex:
        ingredients = list(ingredients)
        owners: dict[str, set[str]] = {}
        for ing in ingredients:
            for name in (ing.name.lower(), *ing.synonyms):
                if name:
                    owners.setdefault(name, set()).add(ing.key)
        # a name found in a text also finds every name that is a whole word within it ("lithium carbonate"
        # holds "lithium"), which the pattern, reporting one name per position, would not list
        closed = {
            name: frozenset(k for inner, keys in owners.items() if _contains_word(name, inner) for k in keys)
            for name in owners
        }
        alternatives = "|".join(re.escape(n) for n in sorted(owners, key=len, reverse=True))
        # [^\W_] is exactly str.isalnum(): the zero-width lookahead tries every position, overlaps included
        pattern = re.compile(rf"(?<![^\W_])(?=({alternatives})(?![^\W_]))") if owners else re.compile(r"(?!)")
        return cls(pattern, closed, {ing.key: i for i, ing in enumerate(ingredients)})


def _contains_word(text: str, word: str) -> bool:
    start = text.find(word)
    while start != -1:
        before = text[start - 1] if start > 0 else " "
        end = start + len(word)
        after = text[end] if end < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(word, start + 1)
    return False


class Indicator(StrEnum):
    """How urgent a card is (CDS Hooks ``Card.indicator``): the one indicator type of the service."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def urgency(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _ORDER.index(self)

    @classmethod
    def most_urgent_first(cls) -> tuple[Indicator, ...]:
        return tuple(reversed(_ORDER))


_ORDER: tuple[Indicator, ...] = tuple(Indicator)


@dataclass(frozen=True)
class CardText:
    """Texts of one card variant. ``summary`` and ``rationale`` are ``str.format`` templates over facts."""

    summary: str  # < 140 characters once formatted
    rationale: str  # markdown paragraph(s): the seed-derived why
    indicator: Indicator  # the default for this variant


@dataclass(frozen=True)
class Seed:
    """A clinical evidence summary the rules were derived from (``seeds.yaml``); never named on a card."""

    prefix: str  # "000"
    title: str
    citation: str


@dataclass(frozen=True)
class Reference:
    """A published source behind the rules (``references.yaml``): what cards name and /docs/rules lists."""

    key: str  # "vadod-mdd-2022": the name topics cite it by
    short: str  # what a clinician recognises on a card: "VA/DoD MDD guideline 2022"
    citation: str  # the full reference
    kind: str  # guideline | article | label | evidence-summary
    year: int
    url: str | None = None
    cited_in: tuple[str, ...] = ()  # the evidence summaries (seed prefixes) that cite it
    verified: str = ""  # what was checked, and where


@dataclass(frozen=True)
class Topic:
    """A rule topic of clinical-rules.md, with the texts and documentation generated from it.

    ``references`` are keys of ``Knowledge.references`` (resolved by the loader: an unknown key stops it);
    ``source_label`` is built from their short labels.
    A *retired* topic is kept only to document its retirement: no rule emits it.
    """

    code: str  # public contract: never renamed
    section: str  # e.g. "1. Indication and treatment resistance (depression)"
    title: str
    logic: str  # the rule in plain words, with {threshold} placeholders filled from Thresholds
    source_label: str  # card source.label: the guideline basis, from the references' short labels
    variants: Mapping[str, CardText]
    override_reasons: tuple[tuple[str, str], ...] = ()  # (code, display)
    references: tuple[str, ...] = ()  # keys of Knowledge.references, most relevant first
    retired: str | None = None  # why and since when the code is no longer emitted ("v2: ...")


ROUTE_GROUPS: tuple[str, ...] = ("intravenous", "intranasal", "other")


@dataclass(frozen=True)
class RouteTerms:
    """How a ``Dosage.route`` is read (``routes.yaml``): codes first, then whole words of its text or displays.

    ``codes``: (system, code) -> route group (one of ``ROUTE_GROUPS``); ``words``: (lower-case word or phrase,
    group), longest first; ``displays``: (system, code) -> display, for the documentation page.
    """

    version: str
    source: str
    codes: Mapping[tuple[str, str], str]
    words: tuple[tuple[str, str], ...]
    displays: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Knowledge:
    """The whole knowledge base. ``thresholds`` is a flat mapping of dotted names to values
    (e.g. ``"bp.critical_systolic": 160``) after deployment overrides are applied."""

    version: str
    valuesets: Mapping[str, ValueSet]
    medications: MedicationCatalog
    thresholds: Mapping[str, float | int | bool]
    topics: Mapping[str, Topic]
    seeds: Mapping[str, Seed]
    local_score_codes: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    references: Mapping[str, Reference] = field(default_factory=dict)
    assessment_orders: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    assessment_labels: Mapping[str, str] = field(default_factory=dict)  # kind -> suggestion label
    routes: RouteTerms = field(default_factory=lambda: RouteTerms("", "", {}, ()))
    # what ``derived`` has computed from this knowledge base (not part of its value: never compared or shown)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def number(self, name: str) -> float:
        value = self.thresholds[name]
        return float(value)

    def flag(self, name: str) -> bool:
        return bool(self.thresholds[name])

    def valueset(self, key: str) -> ValueSet:
        return self.valuesets[key]

    def derived(self, name: str, build: Callable[[Knowledge], T]) -> T:
        """``build(self)``, computed on first use and then kept with this knowledge base (e.g. a lookup index).

        A knowledge base is read-only once loaded, so a value computed from it alone stays valid as long as
        it lives (``dataclasses.replace`` makes a new one, with nothing derived yet). ``name`` identifies the
        value: one name, one ``build``. For knowledge only, never request or patient data. Two threads may
        both build a value on first use; either result is kept (they are equal).
        """
        try:
            return cast(T, self._derived[name])
        except KeyError:
            value = build(self)
            self._derived[name] = value
            return value
