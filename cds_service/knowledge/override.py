"""A deployment's rules configuration (``KETAMINE_CDS_RULES_CONFIG``, YAML or JSON), validated and applied.

It may change thresholds, add local score codes, and add value-set codes and route terms; it is validated
against a JSON Schema built from the bundled knowledge, and any problem raises ``KnowledgeError`` naming the
file, the key and the problem, so the service refuses to start instead of running on a guess.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jsonschema

from cds_service.knowledge.files import (
    INSTRUMENT_KEYS,
    KnowledgeError,
    ThresholdDef,
    format_value,
    longest_first,
    read_json,
    read_yaml,
)
from cds_service.knowledge.model import (
    ROUTE_GROUPS,
    RouteTerms,
    ValueSet,
)
from cds_service.terminology.codes import ICD10CM

ENV_VAR = "KETAMINE_CDS_RULES_CONFIG"


def read_override(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise KnowledgeError(f"{path}: rules configuration file not found ({ENV_VAR})")
    doc = read_json(path) if path.suffix.lower() == ".json" else read_yaml(path)
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
# JSON Schema's bounds (every comparison with NaN is false), so validate_override refuses it by name.
_MAXIMUM_BY_UNIT: Final = {"days": 36_500, "weeks": 5_200, "hours": 876_000, "minutes": 52_560_000, "years": 150}


def override_maximum(definition: ThresholdDef) -> float:
    """The largest value a deployment may set for ``definition`` (at least its default)."""
    return max(float(definition.default), _MAXIMUM_BY_UNIT.get(definition.unit, 1e9))


def validate_override(
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


def check_consistency(file: str, t: Mapping[str, float | int | bool]) -> None:
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


def extend_valuesets(valuesets: Mapping[str, ValueSet], extra: Mapping[str, Any]) -> dict[str, ValueSet]:
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


def extend_local_score_codes(
    local_codes: Mapping[str, frozenset[tuple[str, str]]], extra: Mapping[str, Any]
) -> dict[str, frozenset[tuple[str, str]]]:
    """The bundled local MADRS/HAM-D codes plus a deployment's (keys spelled as the override file allows)."""
    result = dict(local_codes)
    for key, codings in extra.items():
        instrument = INSTRUMENT_KEYS[key.lower()]
        result[instrument] = result.get(instrument, frozenset()) | {(c["system"], c["code"]) for c in codings}
    return result


def extend_routes(routes: RouteTerms, extra: Mapping[str, Any]) -> RouteTerms:
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
        words=longest_first(words),
        displays=MappingProxyType(displays),
    )


def override_marker(path: Path, doc: Mapping[str, Any]) -> str:
    if doc.get("version"):
        return str(doc["version"])
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]
