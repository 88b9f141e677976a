"""Small readers over raw FHIR JSON (already validated or pre-filtered): codings, texts, references."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cds_service.record.model import Code


def codes_of(concept: object) -> tuple[Code, ...]:
    """The codings of a CodeableConcept that have both system and code."""
    if not isinstance(concept, Mapping):
        return ()
    out: list[Code] = []
    for coding in concept.get("coding") or ():
        if isinstance(coding, Mapping):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str) and system and code:
                display = coding.get("display")
                out.append(Code(system, code, display if isinstance(display, str) else None))
    return tuple(out)


def texts_of(concept: object) -> tuple[str, ...]:
    """``text`` and every ``coding.display`` of a CodeableConcept (for the name fallback)."""
    if not isinstance(concept, Mapping):
        return ()
    out: list[str] = []
    text = concept.get("text")
    if isinstance(text, str) and text:
        out.append(text)
    for coding in concept.get("coding") or ():
        if isinstance(coding, Mapping):
            display = coding.get("display")
            if isinstance(display, str) and display:
                out.append(display)
    return tuple(out)


def code_keys(concept: object) -> Iterable[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, cheaply, for pre-filtering raw resources."""
    if not isinstance(concept, Mapping):
        return
    for coding in concept.get("coding") or ():
        if isinstance(coding, Mapping):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                yield system, code


def status_code(concept: object) -> str | None:
    """The first code of a status CodeableConcept (Condition.clinicalStatus/verificationStatus)."""
    codes = codes_of(concept)
    if codes:
        return codes[0].code
    if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
        return str(concept["text"]).strip().lower() or None
    return None


def quantity(value: object) -> tuple[float | None, str | None]:
    """(value, unit code) of a Quantity; the unit falls back to ``unit`` when ``code`` is absent."""
    if not isinstance(value, Mapping):
        return None, None
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None, None
    unit = value.get("code") or value.get("unit")
    return float(number), unit if isinstance(unit, str) else None


def resource_id(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) and rid else None
