"""Load the knowledge base from the versioned data files, apply a deployment override, validate.

``load_knowledge()`` reads ``data/``: ``thresholds.yaml`` (values), ``valuesets/*.json`` (FHIR ValueSets),
``medications.json``, ``seeds.yaml``, ``references.yaml`` (the bibliography), ``override-reasons.yaml``,
``assessments.yaml``, ``local-score-codes.yaml`` and every ``topics/<domain>.yaml`` (each topic names its
``references``; an unknown key is a ``KnowledgeError``). A deployment file (YAML or JSON, named by
``KETAMINE_CDS_RULES_CONFIG``) may change thresholds, add local score codes and add value-set codes; it is
validated against a JSON Schema built from the bundled knowledge, and any problem raises ``KnowledgeError``
naming the file, the key and the problem, so the service refuses to start instead of running on a guess.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jsonschema
import yaml

from cds_service.knowledge.model import (
    ROUTE_GROUPS,
    CardText,
    CodeRule,
    Indicator,
    Ingredient,
    Knowledge,
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

DATA_DIR = Path(__file__).parent / "data"
ENV_VAR = "KETAMINE_CDS_RULES_CONFIG"
TEXT_PATTERN_URL = "urn:ketamine-cds:text-pattern"
TEXT_REGEX_URL = "urn:ketamine-cds:text-regex"
TEXT_EXCLUDE_URL = "urn:ketamine-cds:text-exclude"
NAME_WITH_CODE_URL = "urn:ketamine-cds:name-with-code"
SOURCE_SECTION_URL = "urn:ketamine-cds:source-section"
VSAC_OID_URL = "urn:ketamine-cds:vsac-oid"
INSTRUMENT_KEYS = {"madrs": "MADRS", "ham-d": "HAM-D", "hamd": "HAM-D"}  # override-file spelling -> Instrument

_PLACEHOLDER = re.compile(r"\[\[([a-z0-9_.]+)\]\]")
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


# ---------------------------------------------------------------------------------------------- public API


def load_knowledge(override_file: str | None = None, *, data_dir: Path | None = None) -> Knowledge:
    """Build the knowledge base from ``data_dir`` (default: the bundled data) plus an optional override file."""
    root = data_dir or DATA_DIR
    defs, data_version = _load_threshold_defs(root / "thresholds.yaml")
    thresholds: dict[str, float | int | bool] = {name: d.default for name, d in defs.items()}
    valuesets = _load_valuesets(root / "valuesets")
    local_codes = _load_local_score_codes(root / "local-score-codes.yaml")
    routes = _load_routes(root / "routes.yaml")
    version = data_version

    if override_file:
        override = _read_override(Path(override_file))
        _validate_override(override_file, override, defs, valuesets)
        thresholds.update(override.get("thresholds", {}))
        _check_consistency(override_file, thresholds)
        valuesets = _extend_valuesets(valuesets, override.get("valuesets", {}))
        routes = _extend_routes(routes, override.get("routes", {}))
        for key, codings in override.get("local_score_codes", {}).items():
            instrument = INSTRUMENT_KEYS[key.lower()]
            extra = {(c["system"], c["code"]) for c in codings}
            local_codes[instrument] = local_codes.get(instrument, frozenset()) | extra
        version = f"{data_version}+site.{_override_marker(Path(override_file), override)}"

    reasons = _load_override_reasons(root / "override-reasons.yaml")
    seeds = _load_seeds(root / "seeds.yaml")
    assessment_orders, assessment_labels = _load_assessments(root / "assessments.yaml")
    references = _load_references(root / "references.yaml", seeds)
    return Knowledge(
        version=version,
        valuesets=MappingProxyType(valuesets),
        medications=_load_medications(root / "medications.json"),
        thresholds=MappingProxyType(thresholds),
        topics=MappingProxyType(_load_topics(root, thresholds, reasons, references)),
        seeds=MappingProxyType(seeds),
        local_score_codes=MappingProxyType(local_codes),
        references=MappingProxyType(references),
        assessment_orders=MappingProxyType(assessment_orders),
        assessment_labels=MappingProxyType(assessment_labels),
        routes=routes,
    )


def default_knowledge() -> Knowledge:
    """The knowledge base of this process: bundled data plus the file named by KETAMINE_CDS_RULES_CONFIG.

    Cached per override path, so it is read once per process (and again only if the variable changes).
    """
    return _cached_knowledge(os.environ.get(ENV_VAR) or None)


def threshold_definitions(data_dir: Path | None = None) -> Mapping[str, ThresholdDef]:
    """Threshold names with their default, unit and source (for documentation and validation)."""
    defs, _ = _load_threshold_defs((data_dir or DATA_DIR) / "thresholds.yaml")
    return MappingProxyType(defs)


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


# ---------------------------------------------------------------------------------------------- files


@lru_cache(maxsize=4)
def _cached_knowledge(override_file: str | None) -> Knowledge:
    return load_knowledge(override_file)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_YamlLoader)  # safe loaders only
    except FileNotFoundError as exc:
        raise KnowledgeError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc


def _read_json(path: Path) -> Any:
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


def _require_mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KnowledgeError(f"{where}: expected a mapping")
    return value


def _load_threshold_defs(path: Path) -> tuple[dict[str, ThresholdDef], str]:
    doc = _require_mapping(_read_yaml(path), str(path))
    defs: dict[str, ThresholdDef] = {}
    for name, entry in _require_mapping(doc.get("thresholds"), f"{path}: thresholds").items():
        entry = _require_mapping(entry, f"{path}: thresholds.{name}")
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


def _load_valuesets(folder: Path) -> dict[str, ValueSet]:
    result: dict[str, ValueSet] = {}
    for path in sorted(folder.glob("*.json")):
        doc = _require_mapping(_read_json(path), str(path))
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


def _load_medications(path: Path) -> MedicationCatalog:
    doc = _require_mapping(_read_json(path), str(path))
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


def _load_seeds(path: Path) -> dict[str, Seed]:
    doc = _require_mapping(_read_yaml(path), str(path))
    return {
        str(prefix): Seed(str(prefix), str(entry["title"]), str(entry["citation"]))
        for prefix, entry in _require_mapping(doc.get("seeds"), f"{path}: seeds").items()
    }


def _load_references(path: Path, seeds: Mapping[str, Seed]) -> dict[str, Reference]:
    doc = _require_mapping(_read_yaml(path), str(path))
    result: dict[str, Reference] = {}
    for key, entry in _require_mapping(doc.get("references"), f"{path}: references").items():
        where = f"{path}: references.{key}"
        entry = _require_mapping(entry, where)
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


def _load_override_reasons(path: Path) -> tuple[tuple[str, str], ...]:
    doc = _require_mapping(_read_yaml(path), str(path))
    return tuple((str(r["code"]), str(r["display"])) for r in doc.get("reasons", ()))


def _load_assessments(path: Path) -> tuple[dict[str, Mapping[str, object]], dict[str, str]]:
    """The order templates and the suggestion labels, by assessment kind."""
    doc = _require_mapping(_read_yaml(path), str(path))
    orders: dict[str, Mapping[str, object]] = {}
    labels: dict[str, str] = {}
    for kind, entry in _require_mapping(doc.get("assessments"), f"{path}: assessments").items():
        where = f"{path}: assessments.{kind}"
        entry = _require_mapping(entry, where)
        template = _require_mapping(entry.get("order"), f"{where}.order")
        if template.get("resourceType") != "ServiceRequest":
            raise KnowledgeError(f"{where}.order: resourceType must be ServiceRequest")
        label = entry.get("label")
        if not isinstance(label, str) or not label.strip():
            raise KnowledgeError(f"{where}.label: required (the suggestion's label)")
        orders[str(kind)] = template
        labels[str(kind)] = label
    return orders, labels


def _load_routes(path: Path) -> RouteTerms:
    """Route codes and words (terminology.md §9.3): codes matched first, then whole words, longest first."""
    doc = _require_mapping(_read_yaml(path), str(path))
    groups = _require_mapping(doc.get("routes"), f"{path}: routes")
    codes: dict[tuple[str, str], str] = {}
    displays: dict[tuple[str, str], str] = {}
    words: list[tuple[str, str]] = []
    for group, spec in groups.items():
        if group not in ROUTE_GROUPS:
            raise KnowledgeError(f"{path}: routes.{group}: not one of {', '.join(ROUTE_GROUPS)}")
        spec = _require_mapping(spec, f"{path}: routes.{group}")
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
        words=_longest_first(words),
        displays=MappingProxyType(displays),
    )


def _longest_first(words: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dict.fromkeys(words), key=lambda w: -len(w[0])))


def _load_local_score_codes(path: Path) -> dict[str, frozenset[tuple[str, str]]]:
    if not path.exists():
        return {}
    doc = _require_mapping(_read_yaml(path), str(path))
    result: dict[str, frozenset[tuple[str, str]]] = {}
    for key, codings in (doc.get("local_score_codes") or {}).items():
        instrument = INSTRUMENT_KEYS.get(str(key).lower())
        if instrument is None:
            raise KnowledgeError(f"{path}: local_score_codes.{key}: unknown instrument (MADRS or HAM-D)")
        result[instrument] = frozenset((c["system"], str(c["code"])) for c in codings or ())
    return result


def _load_topics(
    root: Path,
    thresholds: Mapping[str, float | int | bool],
    default_reasons: tuple[tuple[str, str], ...],
    references: Mapping[str, Reference],
) -> dict[str, Topic]:
    """Every ``topics/<domain>.yaml`` (one per ``rules/<domain>.py``); a topic defined twice is an error."""
    topics: dict[str, Topic] = {}
    for path in sorted((root / "topics").glob("*.yaml")):
        doc = _read_yaml(path) or {}
        entries = _require_mapping(doc, str(path)).get("topics") or {}
        for code, raw in _require_mapping(entries, f"{path}: topics").items():
            where = f"{path}: topics.{code}"
            raw = _require_mapping(raw or {}, where)
            if code in topics:
                raise KnowledgeError(f"{where}: topic defined twice")
            variants: dict[str, CardText] = {}
            for name, v in _require_mapping(raw.get("variants") or {}, f"{where}.variants").items():
                v = _require_mapping(v or {}, f"{where}.variants.{name}")
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


# ---------------------------------------------------------------------------------------------- override


def _read_override(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise KnowledgeError(f"{path}: rules configuration file not found ({ENV_VAR})")
    doc = _read_json(path) if path.suffix.lower() == ".json" else _read_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KnowledgeError(
            f"{path}: the top level must be a mapping (thresholds, local_score_codes, valuesets, routes)"
        )
    return doc


def _override_schema(defs: Mapping[str, ThresholdDef], valueset_keys: list[str]) -> dict[str, Any]:
    coding = {
        "type": "object",
        "required": ["system", "code"],
        "additionalProperties": False,
        "properties": {
            "system": {"type": "string", "minLength": 1},
            "code": {"type": "string", "minLength": 1},
            "display": {"type": "string"},
        },
    }
    threshold_props: dict[str, Any] = {}
    for name, d in defs.items():
        is_flag = isinstance(d.default, bool)
        threshold_props[name] = (
            {"type": "boolean"} if is_flag else {"type": "number", "minimum": d.minimum, "maximum": override_maximum(d)}
        )
    valueset_extension = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "codes": {"type": "array", "items": coding},
            "prefixes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["system", "prefix"],
                    "additionalProperties": False,
                    "properties": {"system": {"const": ICD10CM}, "prefix": {"type": "string", "minLength": 1}},
                },
            },
            "text_patterns": {"type": "array", "items": {"type": "string", "minLength": 3}},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,40}$"},
            "thresholds": {"type": "object", "additionalProperties": False, "properties": threshold_props},
            "local_score_codes": {
                "type": "object",
                "additionalProperties": False,
                "patternProperties": {"^(?i:madrs|ham-d|hamd)$": {"type": "array", "items": coding}},
            },
            "valuesets": {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: valueset_extension for k in valueset_keys},
            },
            "routes": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    group: {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "codes": {"type": "array", "items": coding},
                            "words": {"type": "array", "items": {"type": "string", "minLength": 2}},
                        },
                    }
                    for group in ROUTE_GROUPS
                },
            },
        },
    }


# The largest override a threshold may take, by unit: a look-back window or duration of a century at most
# (added to a record's date it stays in the calendar), any other number at most 1e9. YAML's .nan passes
# JSON Schema's bounds (every comparison with NaN is false), so _validate_override refuses it by name.
_MAXIMUM_BY_UNIT: Final = {"days": 36_500, "weeks": 5_200, "hours": 876_000, "minutes": 52_560_000, "years": 150}


def override_maximum(definition: ThresholdDef) -> float:
    """The largest value a deployment may set for ``definition`` (at least its default)."""
    return max(float(definition.default), _MAXIMUM_BY_UNIT.get(definition.unit, 1e9))


def _validate_override(
    file: str, doc: Mapping[str, Any], defs: Mapping[str, ThresholdDef], valuesets: Mapping[str, ValueSet]
) -> None:
    schema = _override_schema(defs, sorted(valuesets))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    problems = [_describe_error(e) for e in errors]
    thresholds = doc.get("thresholds")
    if isinstance(thresholds, Mapping):
        problems += [f"thresholds.{name}: nan is not a number" for name, value in thresholds.items()
                     if isinstance(value, float) and math.isnan(value)]
    if problems:
        raise KnowledgeError(f"{file}: " + "; ".join(problems))


def _describe_error(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if error.schema.get("patternProperties"):
            extra = [k for k in extra if not re.fullmatch(r"(?i:madrs|ham-d|hamd)", k)]
        known = sorted(error.schema.get("properties", {})) or ["MADRS", "HAM-D"]
        hint = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        return f"{path}: unknown key {', '.join(map(repr, extra))} (known: {hint})"
    return f"{path}: {error.message}"


def _check_consistency(file: str, t: Mapping[str, float | int | bool]) -> None:
    """Cross-threshold sanity: a critical line above the elevated one, dose bands in order."""
    ordered = (  # (lower, higher, may they be equal)
        ("bp.elevated_systolic", "bp.critical_systolic", False),
        ("bp.elevated_diastolic", "bp.critical_diastolic", False),
        ("iv.low_range_mg_per_kg", "iv.standard_mg_per_kg", False),
        ("iv.standard_mg_per_kg", "iv.anesthetic_mg_per_kg", False),
        ("esketamine.start_dose_mg", "esketamine.min_effective_mg", True),
        ("esketamine.min_effective_mg", "esketamine.max_dose_mg", True),
        ("esketamine.start_dose_mg", "esketamine.first_dose_mg", True),
        ("esketamine.first_dose_mg", "esketamine.max_dose_mg", True),
        ("iv.standard_mg_per_kg", "iv.nonresponder_max_mg_per_kg", True),
        ("iv.nonresponder_max_mg_per_kg", "iv.anesthetic_mg_per_kg", False),
    )
    for low, high, equal_ok in ordered:
        if low not in t or high not in t:
            continue
        lo, hi = float(t[low]), float(t[high])
        if hi < lo or (hi == lo and not equal_ok):
            relation = "at or above" if equal_ok else "above"
            raise KnowledgeError(
                f"{file}: thresholds.{high}: {format_value(t[high])} must be {relation} {low} ({format_value(t[low])})"
            )


def _extend_valuesets(valuesets: Mapping[str, ValueSet], extra: Mapping[str, Any]) -> dict[str, ValueSet]:
    result = dict(valuesets)
    for key, add in extra.items():
        vs = result[key]
        result[key] = dataclasses.replace(
            vs,
            version=vs.version + "+site",
            source=vs.source + "; plus codes from the deployment file",
            codes=vs.codes | {(c["system"], c["code"]) for c in add.get("codes", ())},
            prefixes=vs.prefixes + tuple((p["system"], p["prefix"]) for p in add.get("prefixes", ())),
            text_patterns=vs.text_patterns + tuple(p.lower() for p in add.get("text_patterns", ())),
        )
    return result


def _extend_routes(routes: RouteTerms, extra: Mapping[str, Any]) -> RouteTerms:
    """The bundled routes plus a deployment's codes and words (a code given again takes the deployment's group)."""
    if not extra:
        return routes
    codes = dict(routes.codes)
    displays = dict(routes.displays)
    words = list(routes.words)
    for group, add in extra.items():
        for c in add.get("codes", ()):
            codes[(c["system"], c["code"])] = group
            if c.get("display"):
                displays[(c["system"], c["code"])] = c["display"]
        words.extend((str(w).lower(), group) for w in add.get("words", ()))
    return dataclasses.replace(
        routes,
        version=routes.version + "+site",
        source=routes.source + "; plus codes and words from the deployment file",
        codes=MappingProxyType(codes),
        words=_longest_first(words),
        displays=MappingProxyType(displays),
    )


def _override_marker(path: Path, doc: Mapping[str, Any]) -> str:
    if doc.get("version"):
        return str(doc["version"])
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]
