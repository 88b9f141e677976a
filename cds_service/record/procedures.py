"""Procedure resources the rules read: electroconvulsive therapy (clinical-rules.md §11 ``trd-candidate``).

A Procedure counts by code (value set ``ect``: the ICD-10-PCS codes of electroconvulsive therapy, and any a
deployment adds) or, whatever its code, when its words name it ("electroconvulsive therapy", "ECT", ...).
Procedures that were not done (``not-done``, ``entered-in-error``, planned ones in ``preparation``) never count.
The raw check is cheap (codes and words only); the resource is validated only when it is ECT.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.record.conditions import strip_negations
from cds_service.record.dates import parse_fhir_datetime, period_bounds
from cds_service.record.fhirdata import codes_of, resource_id, texts_of
from cds_service.record.model import ProcedureFact

VALUESETS: Final = ("ect",)
_NOT_DONE: Final = frozenset({"not-done", "entered-in-error", "preparation"})


def categories(resource: Mapping[str, Any], kb: Knowledge) -> frozenset[str]:
    """The procedure value sets this Procedure belongs to (empty for every other procedure)."""
    if resource.get("status") in _NOT_DONE:
        return frozenset()
    concept = resource.get("code")
    codes = codes_of(concept)
    words = [strip_negations(t) for t in texts_of(concept)]
    found = set()
    for key in VALUESETS:
        vs = kb.valuesets.get(key)
        if vs is not None and not vs.excludes_code(codes) and (vs.matches_code(codes) or vs.matches_text(words)):
            found.add(key)
    return frozenset(found)


def procedure_fact(resource: Mapping[str, Any], found: frozenset[str]) -> ProcedureFact:
    start, end = period_bounds(resource.get("performedPeriod"))
    when = parse_fhir_datetime(resource.get("performedDateTime")) or end or start
    label = next(iter(texts_of(resource.get("code"))), None) or "electroconvulsive therapy"
    return ProcedureFact(resource_id(resource), when, label, found)
