"""Observations that say the patient is breastfeeding (clinical-rules.md §3 ``lactation``).

No verified code exists for breastfeeding status (terminology.md), so an Observation counts when the words of
its code name breastfeeding or lactation (value set ``lactation``) and its value does not deny it: no value
(the code is the finding, "Currently breastfeeding"), ``valueBoolean`` true, or a coded/text value that says
yes or names breastfeeding. "No", "not breastfeeding", "formula" or "weaned" never count; neither does a
value that says nothing either way ("unknown"). A Condition that says so is read as a condition instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.record.conditions import strip_negations
from cds_service.record.dates import parse_fhir_datetime, period_bounds
from cds_service.record.fhirdata import resource_id as rid
from cds_service.record.fhirdata import texts_of
from cds_service.record.model import LactationFact

VALUESET: Final = "lactation"
_CHEAP: Final = re.compile(r"breast|lactat|nursing", re.IGNORECASE)
_YES: Final = re.compile(
    r"^\s*(?:yes|y|true|positive|current|currently)\b|breast ?fe|breast-fe|breastfed|lactating|exclusive|partial|mixed",
    re.I,
)
_NO: Final = re.compile(r"^\s*(?:no|n|false|none|never|negative|unknown|not)\b|formula|wean|stopped|ceased", re.I)
_IGNORED_STATUS: Final = frozenset({"entered-in-error", "cancelled"})


def lactation_fact(resource: Mapping[str, Any], kb: Knowledge) -> LactationFact | None:
    """The fact when this Observation says the patient is breastfeeding; None otherwise (cheap for others)."""
    names = texts_of(resource.get("code"))
    if not any(_CHEAP.search(n) for n in names) or resource.get("status") in _IGNORED_STATUS:
        return None
    vs = kb.valuesets.get(VALUESET)
    if vs is None or not vs.matches_text([strip_negations(n) for n in names]):
        return None
    answer = _answer(resource)
    if answer is False:
        return None
    when = parse_fhir_datetime(resource.get("effectiveDateTime")) or period_bounds(resource.get("effectivePeriod"))[0]
    when = when or parse_fhir_datetime(resource.get("issued"))
    text = names[0] + (f": {answer}" if isinstance(answer, str) else "")
    return LactationFact(rid(resource), when, text)


def _answer(resource: Mapping[str, Any]) -> str | bool | None:
    """The value's words when it says yes; True when there is no value (the code is the finding); False when it
    denies breastfeeding or says nothing either way."""
    if "valueBoolean" in resource:
        return resource["valueBoolean"] is True and "yes"
    value = resource.get("valueString")
    words: tuple[str, ...] = (value,) if isinstance(value, str) else texts_of(resource.get("valueCodeableConcept"))
    if not words:
        has_value = any(k.startswith("value") for k in resource)
        return not has_value
    if any(_NO.search(w) for w in words):
        return False
    return words[0] if any(_YES.search(w) for w in words) else False
