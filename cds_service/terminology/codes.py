"""The coding type every layer matches on, and the code systems the service names (terminology.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC: Final = "http://loinc.org"
NDC: Final = "http://hl7.org/fhir/sid/ndc"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED: Final = "http://snomed.info/sct"
V3_ROUTE: Final = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"


@dataclass(frozen=True, slots=True)
class Code:
    """A coding reduced to what matching needs."""

    system: str
    code: str
    display: str | None = None
