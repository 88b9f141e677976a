"""The readers of raw FHIR JSON, for every layer that reads it (record, order, FHIR fetches): Bundle entries
and links, codings, texts, references, numbers.

Some of them run on raw JSON before validation (the pre-filter): they must never raise on a malformed
value (a ``coding`` that is a number, an unhashable ``status``), only find nothing in it.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard, cast

from cds_service.record.model import Code


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, answered first for JSON's dict (and subclasses: ``record/partial.py``) and
    for None: the ABC check is several times slower, and readers ask it of every element of thousands of
    resources."""
    return type(value) is dict or isinstance(value, dict) or (value is not None and isinstance(value, Mapping))


def codes_of(concept: object) -> tuple[Code, ...]:
    """The codings of a CodeableConcept that have both system and code."""
    if not is_mapping(concept):
        return ()
    out: list[Code] = []
    for coding in codings_of(concept):
        if is_mapping(coding):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str) and system and code:
                display = coding.get("display")
                out.append(Code(system, code, display if isinstance(display, str) else None))
    return tuple(out)


def texts_of(concept: object) -> tuple[str, ...]:
    """``text`` and every ``coding.display`` of a CodeableConcept (for the name fallback)."""
    if not is_mapping(concept):
        return ()
    out: list[str] = []
    text = concept.get("text")
    if isinstance(text, str) and text:
        out.append(text)
    for coding in codings_of(concept):
        if is_mapping(coding):
            display = coding.get("display")
            if isinstance(display, str) and display:
                out.append(display)
    return tuple(out)


def code_keys(concept: object) -> Iterable[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, cheaply, for pre-filtering raw resources."""
    if not is_mapping(concept):
        return
    for coding in codings_of(concept):
        if is_mapping(coding):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                yield system, code


def coding_maps(concept: object) -> list[Mapping[str, Any]]:
    """The codings of a CodeableConcept that are objects (a lone coding object as one); none for anything else."""
    if not is_mapping(concept):
        return []
    return [coding for coding in codings_of(concept) if is_mapping(coding)]


def codings_of(concept: Mapping[str, Any]) -> Sequence[object]:
    """The ``coding`` array of a CodeableConcept; a lone coding object (a real-feed deviation that validation
    repairs and the cards note) as a one-element array; empty when absent or anything else."""
    codings = concept.get("coding")
    if isinstance(codings, list | tuple):
        return codings
    return (codings,) if is_mapping(codings) else ()


def content_key(value: object) -> bytes | None:
    """The exact content of a JSON value as a memo key within one request; None when it cannot be keyed.

    marshal's format 2 (no back-references, no interning flags) writes the content alone and reads back to
    exactly it, so equal keys mean equal content, types included (1, 1.0 and True differ), and equal
    content in the same key order gives equal keys. About 3x cheaper than ``repr``. Only exact JSON types
    can be keyed (marshal refuses subclasses such as a non-dict Mapping).
    """
    try:
        return marshal.dumps(cast(Any, value), 2)
    except ValueError:
        return None


def status_code(concept: object) -> str | None:
    """The first code of a status CodeableConcept (Condition.clinicalStatus/verificationStatus)."""
    codes = codes_of(concept)
    if codes:
        return codes[0].code
    if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
        return str(concept["text"]).strip().lower() or None
    return None


# Every clinical quantity (a dose, a weight, a score, a duration, a count) is 0 or lies far inside this range.
# Outside it a JSON number is junk that arithmetic cannot survive: a 400-digit integer (float() overflows),
# 1e-320 (dividing by it overflows; a unit factor rounds it to 0), 1e300 (products become infinite).
NUMBER_MIN, NUMBER_MAX = 1e-9, 1e9


def usable_number(value: object) -> float | None:
    """A JSON number as a float fit for arithmetic: not a bool, and 0 or between 1e-9 and 1e9 in size.

    Anything else (NaN, infinities, huge or vanishing values) is None, so the caller reports the element as
    not understood, as for a string.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value == 0:
        return 0.0
    if not NUMBER_MIN <= abs(value) <= NUMBER_MAX:  # compares an int exactly, never converting it; NaN fails
        return None
    return float(value)


def quantity(value: object) -> tuple[float | None, str | None]:
    """(value, unit code) of a Quantity; the unit falls back to ``unit`` when ``code`` is absent. A value
    that is not a usable number (``usable_number``) is None."""
    if not is_mapping(value):
        return None, None
    number = usable_number(value.get("value"))
    if number is None:
        return None, None
    unit = value.get("code") or value.get("unit")
    return number, unit if isinstance(unit, str) else None


def resource_id(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) and rid else None


_ERROR_SEVERITIES = ("error", "fatal")


def bundle_resources(bundle: object) -> tuple[list[Mapping[str, Any]], int]:
    """The entry resources of a Bundle without its OperationOutcome entries, and how many of those
    reported an error (warnings and information, e.g. "results truncated", are dropped). Entries that are
    not objects, or a Bundle that is not one, give nothing."""
    resources: list[Mapping[str, Any]] = []
    errors = 0
    entries = bundle.get("entry") if is_mapping(bundle) else None
    if not isinstance(entries, list):
        return resources, 0
    append = resources.append
    for entry in entries:
        if is_mapping(entry):
            resource = entry.get("resource")
            if is_mapping(resource):
                if resource.get("resourceType") == "OperationOutcome":
                    if is_error_outcome(resource):
                        errors += 1
                    continue
                append(resource)
    return resources, errors


def is_error_outcome(outcome: Mapping[str, Any]) -> bool:
    """An OperationOutcome that reports an error (or says nothing, which is taken as one)."""
    issues = outcome.get("issue")
    if not isinstance(issues, list) or not issues:
        return True  # an OperationOutcome that says nothing is taken as an error report
    return any(isinstance(i, Mapping) and i.get("severity") in _ERROR_SEVERITIES for i in issues)


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """The URL of a Bundle's ``next`` page, if it has one."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url: str = link["url"]
            return url
    return None
