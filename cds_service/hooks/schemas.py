"""JSON Schemas of the CDS Hooks bodies, loaded once from ``openapi.yaml`` (components/schemas).

The OpenAPI document is the single source: the service validates with exactly what it documents.
Errors become OperationOutcome issues whose ``expression`` is the path of the offending field.

Hook requests are checked first by :func:`is_valid_json` (``jsonschema_rs``, compiled: a few µs for a
typical request where ``jsonschema`` takes ~0.2 ms); only a body it does not pass goes through
:func:`schema_issues`, whose ``jsonschema`` errors name the problems. The fast check is only ever trusted
to say "valid"; ``tests/protocol/test_protocol_fast_schema.py`` checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cds_service.hooks.errors import Issue

_DOC_URI = "urn:ketamine-cds:openapi"
MAX_ISSUES = 20


@cache
def openapi_document() -> Mapping[str, Any]:
    """The parsed ``openapi.yaml`` shipped with the package."""
    text = resources.files("cds_service").joinpath("openapi.yaml").read_text(encoding="utf-8")
    doc: Mapping[str, Any] = yaml.safe_load(text)
    return doc


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(dict(openapi_document()), default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource(_DOC_URI, resource)
    return registry


@cache
def validator(schema_name: str) -> Draft202012Validator:
    """A validator for ``components/schemas/<schema_name>`` (KeyError when there is no such schema)."""
    if schema_name not in openapi_document()["components"]["schemas"]:
        raise KeyError(schema_name)
    return Draft202012Validator(
        {"$ref": f"{_DOC_URI}#/components/schemas/{schema_name}"}, registry=_registry()
    )


@cache
def fast_validator(schema_name: str) -> jsonschema_rs.Validator:
    """A compiled validator for ``components/schemas/<schema_name>`` (KeyError when there is no such schema).

    Formats are not asserted, as in :func:`validator` (JSON Schema 2020-12 treats ``format`` as an
    annotation unless a format checker is asked for).
    """
    schemas = openapi_document()["components"]["schemas"]
    if schema_name not in schemas:
        raise KeyError(schema_name)
    document = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": schemas}}
    return jsonschema_rs.Draft202012Validator(document, validate_formats=False)


def is_valid_json(schema_name: str, instance: Any) -> bool:
    """True only when ``instance``, a value made by a JSON decoder, is valid: then :func:`schema_issues`
    would return []. False means "not shown valid here": ask :func:`schema_issues`.

    Only for a JSON decoder's output (dict, list, str, int, float, bool, None: ``json.loads``, msgspec's
    untyped decoder, ``hooks.body``'s view of a request): ``jsonschema_rs`` takes a
    tuple for an array, ``jsonschema`` does not. A few valid values are not passed here (the fast
    validator's patterns follow ECMA-262, where ``$`` does not match before a final newline as Python's
    ``re`` does; a lone surrogate in a string that a pattern checks cannot be converted): they only take
    the slower path.
    """
    try:
        return bool(fast_validator(schema_name).is_valid(instance))
    except Exception:  # a value the compiled validator cannot convert: the full validator decides
        return False


def schema_issues(schema_name: str, instance: Any) -> list[Issue]:
    """Every violation of the schema (at most ``MAX_ISSUES``), as OperationOutcome issues; [] when valid."""
    issues: list[Issue] = []
    for error in _leaf_errors(validator(schema_name).iter_errors(instance)):
        issues.append(_issue(error))
        if len(issues) >= MAX_ISSUES:
            break
    return issues


def _leaf_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """Descend into oneOf/anyOf/allOf wrappers so the issue names the real field, not the combinator."""
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        if error.validator in ("oneOf", "anyOf", "allOf") and error.context:
            best = _best_context(error)
            yield from _leaf_errors(iter(best))
        else:
            yield error


def _best_context(error: ValidationError) -> list[ValidationError]:
    """For a failed oneOf, keep the errors of the branch that got furthest (the deepest path)."""
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        branch = sub.schema_path[0] if sub.schema_path else 0
        by_branch.setdefault(branch if isinstance(branch, int) else 0, []).append(sub)
    if error.validator == "allOf":
        return list(error.context or ())

    def depth(errs: list[ValidationError]) -> tuple[int, int]:
        # prefer the branch whose errors are deepest in the document and fewest in number
        return (max(len(e.absolute_path) for e in errs), -len(errs))

    return max(by_branch.values(), key=depth)


def path_expression(path: Any) -> str:
    """``["context", "selections", 0]`` -> ``context.selections[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _issue(error: ValidationError) -> Issue:
    path = list(error.absolute_path)
    code = "structure"
    if error.validator == "required":
        code = "required"
        missing = _missing_property(error)
        if missing is not None:
            path.append(missing)
    elif error.validator in ("enum", "const", "pattern", "minLength", "maxLength", "minimum", "format"):
        code = "value"
    elif error.validator == "dependentRequired":
        code = "required"
        missing = _missing_dependency(error)
        if missing is not None:
            path.append(missing)
    expression = path_expression(path) or None
    message = error.message
    if len(message) > 300:
        message = message[:297] + "..."
    where = f"{expression}: " if expression else ""
    return Issue(f"{where}{message}", code=code, expression=expression)


def _missing_property(error: ValidationError) -> str | None:
    # jsonschema reports each missing name as its own error, "'name' is a required property"; the
    # validator value lists every required name, so pick the one this message is about
    instance = error.instance
    if isinstance(error.validator_value, list) and isinstance(instance, Mapping):
        missing = [str(name) for name in error.validator_value if name not in instance]
        for name in missing:
            if error.message.startswith(f"{name!r} "):
                return name
        return missing[0] if missing else None
    return None


def _missing_dependency(error: ValidationError) -> str | None:
    instance = error.instance
    if isinstance(error.validator_value, Mapping) and isinstance(instance, Mapping):
        for present, needed in error.validator_value.items():
            if present in instance:
                for name in needed:
                    if name not in instance:
                        return str(name)
    return None
