"""Reading the bundled knowledge files into the knowledge base's parts, each checked as it is read.

``data/``: ``thresholds.yaml`` (values), ``valuesets/*.json`` (FHIR ValueSets), ``medications.json``,
``seeds.yaml``, ``references.yaml`` (the bibliography), ``override-reasons.yaml``, ``assessments.yaml``,
``local-score-codes.yaml``, ``routes.yaml`` and every ``topics/<domain>.yaml`` (each topic names its
``references``; an unknown key is a ``KnowledgeError``). A problem raises ``KnowledgeError`` naming the file,
the key and the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from cds_service.knowledge.model import (
    ROUTE_GROUPS,
    CardText,
    CodeRule,
    Indicator,
    Ingredient,
    MedicationCatalog,
    Product,
    Reference,
    RouteTerms,
    Seed,
    Topic,
    ValueSet,
)
from cds_service.terminology.codes import ICD10CM, NDC
from cds_service.terminology.ndc import normalize_ndc

TEXT_PATTERN_URL = "urn:ketamine-cds:text-pattern"
TEXT_REGEX_URL = "urn:ketamine-cds:text-regex"
TEXT_EXCLUDE_URL = "urn:ketamine-cds:text-exclude"
NAME_WITH_CODE_URL = "urn:ketamine-cds:name-with-code"
SOURCE_SECTION_URL = "urn:ketamine-cds:source-section"
VSAC_OID_URL = "urn:ketamine-cds:vsac-oid"
_PLACEHOLDER = re.compile(r"\[\[([a-z0-9_.]+)\]\]")
INSTRUMENT_KEYS = {"madrs": "MADRS", "ham-d": "HAM-D", "hamd": "HAM-D"}  # override-file spelling -> Instrument
LABEL_REFERENCES = 3  # a card's source.label names at most this many of its topic's references
REFERENCE_KINDS = ("guideline", "article", "label", "evidence-summary")
_REFERENCE_SHORT_MAX = 45


try:  # the C loader is several times faster; the pure-Python one is the fallback
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _YamlLoader = yaml.SafeLoader


class KnowledgeError(ValueError):
    """A knowledge or deployment file is unreadable or invalid. The message names file, key and problem."""


@dataclass(frozen=True)
class ThresholdDef:
    """One entry of thresholds.yaml with its metadata (the docs page shows unit and source)."""

    name: str
    default: float | int | bool
    unit: str
    source: str
    minimum: float = 0  # lowest value a deployment override may set


def format_value(value: float | int | bool) -> str:
    """A threshold value in plain words: ``160``, ``0.5``, ``yes``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def fill_placeholders(text: str, thresholds: Mapping[str, float | int | bool], *, where: str) -> str:
    """Replace ``[[threshold.name]]`` with the effective value; an unknown name is a KnowledgeError."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in thresholds:
            raise KnowledgeError(f"{where}: [[{name}]] is not a threshold in thresholds.yaml")
        return format_value(thresholds[name])

    return _PLACEHOLDER.sub(sub, text)


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_YamlLoader)  # safe loaders only
    except FileNotFoundError as exc:
        raise KnowledgeError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc


def read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise KnowledgeError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise KnowledgeError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


def require_mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KnowledgeError(f"{where}: expected a mapping")
    return value


def load_threshold_defs(path: Path) -> tuple[dict[str, ThresholdDef], str]:
    doc = require_mapping(read_yaml(path), str(path))
    defs: dict[str, ThresholdDef] = {}
    for name, entry in require_mapping(doc.get("thresholds"), f"{path}: thresholds").items():
        entry = require_mapping(entry, f"{path}: thresholds.{name}")
        value = entry.get("value")
        if not isinstance(value, bool | int | float):
            raise KnowledgeError(f"{path}: thresholds.{name}.value: expected a number or true/false")
        minimum = entry.get("minimum", 0)
        if isinstance(minimum, bool) or not isinstance(minimum, int | float) or value < minimum:
            raise KnowledgeError(f"{path}: thresholds.{name}.minimum: expected a number at or below the value")
        defs[name] = ThresholdDef(
            name, value, str(entry.get("unit", "")), str(entry.get("source", "")), float(minimum)
        )
    return defs, str(doc.get("version", "unversioned"))


def load_valuesets(folder: Path) -> dict[str, ValueSet]:
    result: dict[str, ValueSet] = {}
    for path in sorted(folder.glob("*.json")):
        doc = require_mapping(read_json(path), str(path))
        if doc.get("resourceType") != "ValueSet":
            raise KnowledgeError(f"{path}: resourceType must be ValueSet")
        result[path.stem] = _valueset_from_fhir(path.stem, doc, path)
    return result


def _valueset_from_fhir(key: str, doc: Mapping[str, Any], path: Path) -> ValueSet:
    compose = doc.get("compose", {})
    include = _code_rule(compose.get("include", []), path, "include")
    exclude = _code_rule(compose.get("exclude", []), path, "exclude")
    extensions = doc.get("extension", [])

    def strings(url: str) -> list[str]:
        return [str(e["valueString"]) for e in extensions if e.get("url") == url]

    patterns = tuple(p.lower() for p in strings(TEXT_PATTERN_URL))
    regexes = tuple(_regex(r, path, "text") for r in strings(TEXT_REGEX_URL))
    text_excludes = tuple(_regex(r, path, "text") for r in strings(TEXT_EXCLUDE_URL))
    name_with_code = any(e.get("valueBoolean") is True for e in extensions if e.get("url") == NAME_WITH_CODE_URL)
    sections = strings(SOURCE_SECTION_URL)
    oids = [e["valueOid"].removeprefix("urn:oid:") for e in extensions if e.get("url") == VSAC_OID_URL]
    source = "; ".join(sections) + (f"; VSAC {', '.join(oids)}" if oids else "")
    return ValueSet(
        key=key,
        url=str(doc.get("url", f"urn:ketamine-cds:valueset:{key}")),
        version=str(doc.get("version", "")),
        title=str(doc.get("title", key)),
        source=source or str(doc.get("description", "")),
        codes=include.codes,
        prefixes=include.prefixes,
        text_patterns=patterns,
        patterns=include.patterns,
        exclude=exclude,
        text_regexes=regexes,
        text_excludes=text_excludes,
        name_with_code=name_with_code,
    )


def _code_rule(parts: list[Mapping[str, Any]], path: Path, where: str) -> CodeRule:
    """``compose.include`` or ``compose.exclude``: concepts, ``concept is-a`` (ICD-10-CM prefixes) and
    ``code regex`` filters (a regular expression the whole code must match)."""
    codes: set[tuple[str, str]] = set()
    prefixes: list[tuple[str, str]] = []
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for part in parts:
        system = part.get("system")
        if not system:
            raise KnowledgeError(f"{path}: compose.{where} without system")
        for concept in part.get("concept", []):
            codes.add((system, str(concept["code"])))
        for flt in part.get("filter", []):
            prop, op, value = flt.get("property"), flt.get("op"), str(flt.get("value", ""))
            if prop == "concept" and op == "is-a":
                if system != ICD10CM:
                    raise KnowledgeError(f"{path}: is-a filters are read as prefixes, only for ICD-10-CM")
                prefixes.append((system, value))
            elif prop == "code" and op == "regex":
                patterns.append((system, _regex(value, path, "code", ignore_case=False)))
            else:
                raise KnowledgeError(f"{path}: only 'concept is-a' and 'code regex' filters are supported")
    return CodeRule(frozenset(codes), tuple(prefixes), tuple(patterns))


def _regex(pattern: str, path: Path, what: str, *, ignore_case: bool = True) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise KnowledgeError(f"{path}: {what} regular expression {pattern!r} is invalid: {exc}") from exc


def load_medications(path: Path) -> MedicationCatalog:
    doc = require_mapping(read_json(path), str(path))
    rxnorm = doc["systems"]["rxnorm"]
    ingredients: dict[str, Ingredient] = {}
    ingredient_codes: dict[tuple[str, str], str] = {}
    for entry in doc["ingredients"]:
        ing = Ingredient(
            key=entry["key"],
            rxcui=entry.get("rxcui"),
            name=entry["name"],
            roles=frozenset(entry.get("roles", ())),
            drug_class=entry.get("drug_class"),
            min_daily_dose_mg=entry.get("min_daily_dose_mg"),
            synonyms=tuple(s.lower() for s in entry.get("synonyms", ())),
            source=entry.get("source", ""),
        )
        ingredients[ing.key] = ing
        if ing.rxcui:
            ingredient_codes[(rxnorm, ing.rxcui)] = ing.key
        for extra in entry.get("extra_codes", ()):
            ingredient_codes[(extra["system"], extra["code"])] = ing.key
    products: dict[tuple[str, str], Product] = {}
    for entry in doc["products"]:
        unknown = [k for k in entry["ingredients"] if k not in ingredients]
        if unknown:
            raise KnowledgeError(f"{path}: product {entry['code']}: unknown ingredient {unknown[0]!r}")
        product = Product(
            rxcui=entry["code"],
            display=entry["display"],
            ingredients=tuple(entry["ingredients"]),
            strength_mg=MappingProxyType({k: float(v) for k, v in entry.get("strength_mg", {}).items()}),
        )
        system = entry["system"]
        products[(system, entry["code"])] = product
        if system == NDC:  # EHRs send label (5-3-2) or 11-digit (5-4-2) forms, with or without hyphens
            eleven = normalize_ndc(entry["code"])
            products[(system, eleven)] = product
            products[(system, f"{eleven[:5]}-{eleven[5:9]}-{eleven[9:]}")] = product
    return MedicationCatalog(
        ingredients=MappingProxyType(ingredients),
        products=MappingProxyType(products),
        ingredient_codes=MappingProxyType(ingredient_codes),
    )


def load_seeds(path: Path) -> dict[str, Seed]:
    doc = require_mapping(read_yaml(path), str(path))
    return {
        str(prefix): Seed(str(prefix), str(entry["title"]), str(entry["citation"]))
        for prefix, entry in require_mapping(doc.get("seeds"), f"{path}: seeds").items()
    }


def load_references(path: Path, seeds: Mapping[str, Seed]) -> dict[str, Reference]:
    doc = require_mapping(read_yaml(path), str(path))
    result: dict[str, Reference] = {}
    for key, entry in require_mapping(doc.get("references"), f"{path}: references").items():
        where = f"{path}: references.{key}"
        entry = require_mapping(entry, where)
        for name in ("short", "citation", "kind", "year"):
            if entry.get(name) in (None, ""):
                raise KnowledgeError(f"{where}.{name}: required")
        short = str(entry["short"])
        if len(short) > _REFERENCE_SHORT_MAX:
            raise KnowledgeError(f"{where}.short: at most {_REFERENCE_SHORT_MAX} characters (it is card text)")
        kind = str(entry["kind"])
        if kind not in REFERENCE_KINDS:
            raise KnowledgeError(f"{where}.kind: {kind!r} is not one of {', '.join(REFERENCE_KINDS)}")
        year = entry["year"]
        if isinstance(year, bool) or not isinstance(year, int):
            raise KnowledgeError(f"{where}.year: expected a year")
        cited_in = tuple(str(s) for s in entry.get("cited_in") or ())
        unknown = [s for s in cited_in if s not in seeds]
        if unknown:
            raise KnowledgeError(f"{where}.cited_in: {unknown[0]!r} is not an evidence summary of seeds.yaml")
        url = entry.get("url")
        result[str(key)] = Reference(
            key=str(key),
            short=short,
            citation=" ".join(str(entry["citation"]).split()),
            kind=kind,
            year=year,
            url=str(url) if url else None,
            cited_in=cited_in,
            verified=" ".join(str(entry.get("verified", "")).split()),
        )
    return result


def source_label(references: Mapping[str, Reference], keys: tuple[str, ...]) -> str:
    """A card's ``source.label``: the short labels of a topic's first references ("VA/DoD MDD guideline 2022; ...")."""
    return "; ".join(references[k].short for k in keys[:LABEL_REFERENCES])


def load_override_reasons(path: Path) -> tuple[tuple[str, str], ...]:
    doc = require_mapping(read_yaml(path), str(path))
    return tuple((str(r["code"]), str(r["display"])) for r in doc.get("reasons", ()))


def load_assessments(path: Path) -> tuple[dict[str, Mapping[str, object]], dict[str, str]]:
    """The order templates and the suggestion labels, by assessment kind."""
    doc = require_mapping(read_yaml(path), str(path))
    orders: dict[str, Mapping[str, object]] = {}
    labels: dict[str, str] = {}
    for kind, entry in require_mapping(doc.get("assessments"), f"{path}: assessments").items():
        where = f"{path}: assessments.{kind}"
        entry = require_mapping(entry, where)
        template = require_mapping(entry.get("order"), f"{where}.order")
        if template.get("resourceType") != "ServiceRequest":
            raise KnowledgeError(f"{where}.order: resourceType must be ServiceRequest")
        label = entry.get("label")
        if not isinstance(label, str) or not label.strip():
            raise KnowledgeError(f"{where}.label: required (the suggestion's label)")
        orders[str(kind)] = template
        labels[str(kind)] = label
    return orders, labels


def load_routes(path: Path) -> RouteTerms:
    """Route codes and words (terminology.md §9.3): codes matched first, then whole words, longest first."""
    doc = require_mapping(read_yaml(path), str(path))
    groups = require_mapping(doc.get("routes"), f"{path}: routes")
    codes: dict[tuple[str, str], str] = {}
    displays: dict[tuple[str, str], str] = {}
    words: list[tuple[str, str]] = []
    for group, spec in groups.items():
        if group not in ROUTE_GROUPS:
            raise KnowledgeError(f"{path}: routes.{group}: not one of {', '.join(ROUTE_GROUPS)}")
        spec = require_mapping(spec, f"{path}: routes.{group}")
        for c in spec.get("codes") or ():
            key = (str(c["system"]), str(c["code"]))
            codes[key] = group
            if c.get("display"):
                displays[key] = str(c["display"])
        words.extend((str(w).lower(), group) for w in spec.get("words") or ())
    return RouteTerms(
        version=str(doc.get("version", "")),
        source=str(doc.get("source", "")),
        codes=MappingProxyType(codes),
        words=longest_first(words),
        displays=MappingProxyType(displays),
    )


def longest_first(words: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dict.fromkeys(words), key=lambda w: -len(w[0])))


def load_local_score_codes(path: Path) -> dict[str, frozenset[tuple[str, str]]]:
    if not path.exists():
        return {}
    doc = require_mapping(read_yaml(path), str(path))
    result: dict[str, frozenset[tuple[str, str]]] = {}
    for key, codings in (doc.get("local_score_codes") or {}).items():
        instrument = INSTRUMENT_KEYS.get(str(key).lower())
        if instrument is None:
            raise KnowledgeError(f"{path}: local_score_codes.{key}: unknown instrument (MADRS or HAM-D)")
        result[instrument] = frozenset((c["system"], str(c["code"])) for c in codings or ())
    return result


def load_topics(
    root: Path,
    thresholds: Mapping[str, float | int | bool],
    default_reasons: tuple[tuple[str, str], ...],
    references: Mapping[str, Reference],
) -> dict[str, Topic]:
    """Every ``topics/<domain>.yaml`` (one per ``rules/<domain>.py``); a topic defined twice is an error."""
    topics: dict[str, Topic] = {}
    for path in sorted((root / "topics").glob("*.yaml")):
        doc = read_yaml(path) or {}
        entries = require_mapping(doc, str(path)).get("topics") or {}
        for code, raw in require_mapping(entries, f"{path}: topics").items():
            where = f"{path}: topics.{code}"
            raw = require_mapping(raw or {}, where)
            if code in topics:
                raise KnowledgeError(f"{where}: topic defined twice")
            variants: dict[str, CardText] = {}
            for name, v in require_mapping(raw.get("variants") or {}, f"{where}.variants").items():
                v = require_mapping(v or {}, f"{where}.variants.{name}")
                try:
                    indicator = Indicator(str(v.get("indicator", Indicator.INFO.value)))
                except ValueError as exc:
                    raise KnowledgeError(
                        f"{where}.variants.{name}.indicator: {v.get('indicator')!r} is not "
                        + "|".join(i.value for i in Indicator)
                    ) from exc
                variants[str(name)] = CardText(
                    summary=fill_placeholders(str(v.get("summary", "")), thresholds, where=f"{where}.variants.{name}"),
                    rationale=fill_placeholders(
                        str(v.get("rationale", "")), thresholds, where=f"{where}.variants.{name}"
                    ),
                    indicator=indicator,
                )
            logic = fill_placeholders(str(raw.get("logic", "")), thresholds, where=where)
            keys = _topic_references(raw, references, where)
            reasons = tuple((str(r["code"]), str(r["display"])) for r in raw.get("override_reasons") or ())
            retired = raw.get("retired")
            topics[str(code)] = Topic(
                code=str(code),
                section=str(raw.get("section", "")),
                title=str(raw.get("title", code)),
                logic=logic,
                source_label=source_label(references, keys),
                variants=MappingProxyType(variants),
                override_reasons=reasons or default_reasons,
                references=keys,
                retired=str(retired) if retired else None,
            )
    return topics


def _topic_references(raw: Mapping[str, Any], references: Mapping[str, Reference], where: str) -> tuple[str, ...]:
    """The topic's ``references:`` keys, each resolved in the bibliography; none, or an unknown one, stops the load."""
    for retired_field in ("seeds", "source_label"):
        if retired_field in raw:
            raise KnowledgeError(
                f"{where}.{retired_field}: no longer written by hand; list the published sources under "
                "`references:` (keys of references.yaml): cards name them in source.label"
            )
    keys = raw.get("references")
    if not isinstance(keys, list) or not keys:
        raise KnowledgeError(f"{where}.references: required, a list of keys of references.yaml")
    for key in keys:
        if key not in references:
            known = ", ".join(sorted(references))
            raise KnowledgeError(f"{where}.references: unknown reference {key!r} (known: {known})")
    if len(set(keys)) != len(keys):
        raise KnowledgeError(f"{where}.references: a reference is listed twice")
    return tuple(str(k) for k in keys)
