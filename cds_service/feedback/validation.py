"""Validation of the feedback request body, into :class:`FeedbackEntry` values.

The JSON Schema is ``components/schemas/FeedbackRequest`` of ``openapi.yaml`` (one contract for the docs,
the conformance tests and this endpoint). After the schema, the rules every client must meet are checked
in code whatever the schema says: ``acceptedSuggestions`` when accepted (cds-fb-2) and an RFC 3339
``outcomeTimestamp`` that has a UTC value (years 1-9999: ``0001-01-01T00:00:00+09:07`` is a 400, not a
500). Messages name the field and never echo values from the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cds_service.feedback.store import FeedbackEntry

_OPENAPI_URI = "urn:ketamine-cds:openapi"
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:(?P<second>\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
MAX_PROBLEMS = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the body: where (FHIRPath-like, e.g. ``feedback[0].outcome``) and what."""

    location: str
    message: str


class FeedbackInvalid(ValueError):
    """The body is not acceptable feedback; ``problems`` name each field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.location}: {p.message}" for p in problems))
        self.problems = tuple(problems)


def parse_feedback(body: Any) -> list[FeedbackEntry]:
    """Validate a decoded JSON body and return its entries; raise :class:`FeedbackInvalid`."""
    if not isinstance(body, Mapping):
        raise FeedbackInvalid([Problem("(body)", "must be a JSON object with a 'feedback' array")])
    problems = [p for e in _sorted_errors(feedback_validator().iter_errors(body)) for p in _problems(e)]
    if problems:  # the schema's problems, and every timestamp with no UTC instant, named at once
        items = body.get("feedback")
        problems.extend(
            _timestamp_problem(f"feedback[{i}]")
            for i, item in enumerate(items if isinstance(items, list) else [])
            if isinstance(item, Mapping)
            and isinstance(item.get("outcomeTimestamp"), str)
            and parse_rfc3339(item["outcomeTimestamp"]) is None
        )
        raise FeedbackInvalid(_unique(problems)[:MAX_PROBLEMS])
    entries: list[FeedbackEntry] = []
    for i, item in enumerate(body["feedback"]):
        entries.append(_entry(item, f"feedback[{i}]", problems))
    if problems:
        raise FeedbackInvalid(problems[:MAX_PROBLEMS])
    return entries


def parse_rfc3339(value: str) -> datetime | None:
    """An aware UTC datetime for an RFC 3339 date-time, or None when it is not one or has no UTC value.

    A leap second (``23:59:60``, RFC 3339 §5.6) is read as the second before it. An instant that UTC
    cannot hold in years 1-9999 (``0001-01-01T00:00:00+09:07`` is in year 0) is None, like a malformed one.
    """
    match = _RFC3339.match(value)
    if not match:
        return None
    text = value.replace("z", "Z").replace("t", "T", 1)
    if match.group("second") == "60":
        text = text[: match.start("second")] + "59" + text[match.end("second"):]
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # day 31 of a 30-day month, hour 24; an offset leaving years 1-9999
        return None


def _timestamp_problem(where: str) -> Problem:
    return Problem(
        f"{where}.outcomeTimestamp",
        "must be an RFC 3339 date-time such as 2026-11-23T12:00:00Z, between years 1 and 9999 once converted to UTC",
    )


class FeedbackSchemaError(RuntimeError):
    """openapi.yaml is missing or does not define ``FeedbackRequest``: the service refuses to start."""


@lru_cache(maxsize=1)
def feedback_validator() -> Draft202012Validator:
    """The validator for ``components/schemas/FeedbackRequest`` of the packaged openapi.yaml."""
    path = resources.files("cds_service").joinpath("openapi.yaml")
    try:
        openapi = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FeedbackSchemaError(f"cannot read cds_service/openapi.yaml: {exc}") from exc
    schemas = openapi.get("components", {}).get("schemas", {}) if isinstance(openapi, Mapping) else {}
    if not isinstance(schemas, Mapping) or "FeedbackRequest" not in schemas:
        raise FeedbackSchemaError("openapi.yaml defines no components/schemas/FeedbackRequest")
    resource = Resource.from_contents(openapi, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_OPENAPI_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{_OPENAPI_URI}#/components/schemas/FeedbackRequest"}, registry=registry
    )


def _entry(item: Mapping[str, Any], where: str, problems: list[Problem]) -> FeedbackEntry:
    """Build one entry from a schema-valid item, checking what every schema must imply."""
    card = item.get("card")
    outcome = item.get("outcome")
    stamp_raw = item.get("outcomeTimestamp")
    stamp = parse_rfc3339(stamp_raw) if isinstance(stamp_raw, str) else None
    if stamp is None:
        problems.append(_timestamp_problem(where))
    accepted: list[str] = []
    raw_accepted = item.get("acceptedSuggestions")
    if isinstance(raw_accepted, list):
        accepted = [s["id"] for s in raw_accepted if isinstance(s, Mapping) and isinstance(s.get("id"), str)]
    if outcome == "accepted" and not accepted:
        problems.append(
            Problem(f"{where}.acceptedSuggestions", "is required when outcome is 'accepted' (cds-fb-2)")
        )
    reason = item.get("overrideReason")
    reason = reason if isinstance(reason, Mapping) else {}
    coding = reason.get("reason")
    coding = coding if isinstance(coding, Mapping) else {}
    comment = reason.get("userComment")
    return FeedbackEntry(
        card_uuid=str(card),
        outcome=str(outcome),
        outcome_timestamp=stamp or datetime.min.replace(tzinfo=UTC),
        reason_system=_text(coding.get("system")),
        reason_code=_text(coding.get("code")),
        reason_display=_text(coding.get("display")),
        user_comment=comment if isinstance(comment, str) and comment.strip() else None,
        accepted_suggestions=tuple(accepted),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _sorted_errors(errors: Iterable[ValidationError]) -> list[ValidationError]:
    flat: list[ValidationError] = []
    for error in errors:
        # if/then and $ref wrap the useful error; keep the innermost ones
        flat.extend(_leaves(error))
    return sorted(flat, key=lambda e: [str(p) for p in e.absolute_path])


def _leaves(error: ValidationError) -> list[ValidationError]:
    if error.context and error.validator in ("anyOf", "oneOf", "allOf"):
        leaves: list[ValidationError] = []
        for sub in error.context:
            leaves.extend(_leaves(sub))
        return leaves
    return [error]


def _location(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(error: ValidationError) -> list[Problem]:
    where = _location(error.absolute_path)
    if error.validator == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        names = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [str(n) for n in names if n not in instance] or ["(property)"]
        return [Problem(f"{where}.{name}" if where else name, "is required") for name in missing]
    return [_problem(error, where or "(body)")]


def _problem(error: ValidationError, where: str) -> Problem:
    keyword = str(error.validator)
    value = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "enum":
        return Problem(where, "must be one of: " + ", ".join(str(v) for v in value))
    if keyword == "const":
        return Problem(where, f"must be {value!r}")
    if keyword == "type":
        kinds = value if isinstance(value, list) else [value]
        return Problem(where, "must be of type " + " or ".join(str(k) for k in kinds))
    if keyword in ("minItems", "maxItems", "minLength", "maxLength", "minProperties"):
        what = {"minItems": "at least {} item(s)", "maxItems": "at most {} items",
                "minLength": "at least {} character(s)", "maxLength": "at most {} characters",
                "minProperties": "at least {} property(ies)"}[keyword]
        return Problem(where, "must have " + what.format(value))
    if keyword in ("pattern", "format"):
        hint = schema.get("description")
        return Problem(where, "is not in the expected format" + (f" ({hint})" if hint else ""))
    return Problem(where, f"is invalid ({keyword})")


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out: list[Problem] = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out
