"""The two CDS services this server offers and the prefetch templates they declare.

Templates use only what CDS Hooks 2.0 allows in a prefetch (cds-hooks-spec.md §3): the tokens
``{{context.patientId}}`` (root-level context fields only), instance reads, type searches with reference
and token parameters (equality, comma = OR), ``_count``, ``_sort`` and ``_include``. 2.0 has no token for
"today", so no template carries a date bound; latest-value searches ask for the newest results instead
(``_sort=-date&_count=N``) and need only the first page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.record import kinds
from cds_service.terminology.codes import LOINC


def _codes(*codes: str) -> str:
    return ",".join(f"{LOINC}|{c}" for c in codes)


# terminology.md §4: BP panel 85354-9 and legacy 55284-4, or separate systolic/diastolic Observations
BP_CODES = ("85354-9", "55284-4", "8480-6", "8462-4")
# terminology.md §4: body weight 29463-7 (also 3141-9 measured)
WEIGHT_CODES = ("29463-7", "3141-9")
# terminology.md §4: PHQ-9 total scores (44261-6; 89204-2 modified for teens): found by code whatever their category
SCORE_CODES = ("44261-6", "89204-2")
# terminology.md §4: hCG tests of the PregnancyTest value set (qualitative and quantitative, verified rows)
PREGNANCY_TEST_CODES = (
    "2106-3", "2112-1", "80384-1", "2118-8", "2110-5", "80385-8",
    "19080-1", "21198-7", "83086-9", "25372-4",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PrefetchKey:
    """One prefetch template and what the service does with its data.

    ``kind`` is the record data kind (``record/kinds.py``) the key feeds; ``required`` keys that cannot be
    obtained give 412, others a data gap named in the cards; ``follow_pages`` says whether ``next`` links
    of a paged search are followed (latest-value searches need the first page only).
    """

    key: str
    template: str
    kind: str
    required: bool
    follow_pages: bool = True

    @property
    def is_read(self) -> bool:
        """An instance read (``Type/id``) rather than a search."""
        return "?" not in self.template

    @property
    def read_type(self) -> str | None:
        """The resource type an instance read returns (``Patient`` for ``Patient/{{...}}``); None for searches."""
        return self.template.split("/", 1)[0] if self.is_read else None


PREFETCH: tuple[PrefetchKey, ...] = (
    PrefetchKey("patient", "Patient/{{context.patientId}}", kinds.PATIENT, required=True),
    PrefetchKey("conditions", "Condition?patient={{context.patientId}}", kinds.CONDITIONS, required=True),
    PrefetchKey(
        "medicationRequests",
        "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication",
        kinds.MEDICATIONS,
        required=True,
    ),
    PrefetchKey(
        "medicationStatements",
        "MedicationStatement?patient={{context.patientId}}&_include=MedicationStatement:medication",
        kinds.MEDICATIONS,
        required=False,
    ),
    PrefetchKey(
        "bloodPressure",
        f"Observation?patient={{{{context.patientId}}}}&code={_codes(*BP_CODES)}&_sort=-date&_count=20",
        kinds.BLOOD_PRESSURE,
        required=False,
        follow_pages=False,
    ),
    PrefetchKey(
        "bodyWeight",
        f"Observation?patient={{{{context.patientId}}}}&code={_codes(*WEIGHT_CODES)}&_sort=-date&_count=5",
        kinds.WEIGHT,
        required=False,
        follow_pages=False,
    ),
    PrefetchKey(
        # whole history: treatment trials are judged on baseline and follow-up scores. MADRS and HAM-D have
        # no LOINC total-score code (terminology.md §4): they are found by category (and read by name or a
        # configured local code).
        "depressionScores",
        "Observation?patient={{context.patientId}}&category=survey&_sort=-date",
        kinds.SCORES,
        required=False,
    ),
    PrefetchKey(
        # The same kind by code: a PHQ-9 filed under another category (or none) is not in the search above.
        # Search parameters are ANDed, so "survey OR PHQ-9" cannot be one query: two keys, whose results the
        # record merges (a score found by both is read once).
        "depressionScoresByCode",
        f"Observation?patient={{{{context.patientId}}}}&code={_codes(*SCORE_CODES)}&_sort=-date",
        kinds.SCORES,
        required=False,
    ),
    PrefetchKey(
        "pregnancyTests",
        f"Observation?patient={{{{context.patientId}}}}&code={_codes(*PREGNANCY_TEST_CODES)}"
        "&_sort=-date&_count=5",
        kinds.PREGNANCY_TESTS,
        required=False,
        follow_pages=False,
    ),
    PrefetchKey(
        "administrations",
        "MedicationAdministration?patient={{context.patientId}}&status=completed"
        "&_include=MedicationAdministration:medication",
        kinds.ADMINISTRATIONS,
        required=False,
    ),
    # clinical-rules.md §3 hypersensitivity: the whole allergy list (a ketamine allergy is found by code or name)
    PrefetchKey("allergies", "AllergyIntolerance?patient={{context.patientId}}", kinds.ALLERGIES, required=False),
    PrefetchKey(
        # clinical-rules.md §3 lactation: breastfeeding status has no verified LOINC code (terminology.md), so
        # the newest social-history Observations are read and recognised by their words; survey Observations
        # come with depressionScores.
        "lactation",
        "Observation?patient={{context.patientId}}&category=social-history&_sort=-date&_count=50",
        kinds.LACTATION,
        required=False,
        follow_pages=False,
    ),
)

_USAGE = (
    "For FHIR R4 MedicationRequest orders. Send the prefetch keys (a key the EHR cannot satisfy may be left "
    "out: the service then reads it from fhirServer, which must be on its allowlist). Patient, conditions "
    "and medicationRequests are required; other missing data is named on the cards."
)


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str
    prefetch: tuple[PrefetchKey, ...] = PREFETCH
    request_schema: str = ""  # components/schemas name in openapi.yaml

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "usageRequirements": self.usage_requirements,
            "prefetch": {p.key: p.template for p in self.prefetch},
        }


SERVICES: Mapping[str, ServiceDefinition] = {
    s.id: s
    for s in (
        ServiceDefinition(
            id="ketamine-order-select",
            hook="order-select",
            title="Ketamine and esketamine order check (select)",
            description=(
                "When IV ketamine or intranasal esketamine is selected, checks the indication, treatment "
                "resistance, depression severity, bipolar cover, contraindications, dose and course of "
                "treatment against the evidence, and says what is missing. Looks only at the selected orders."
            ),
            usage_requirements=_USAGE,
            request_schema="OrderSelectRequest",
        ),
        ServiceDefinition(
            id="ketamine-order-sign",
            hook="order-sign",
            title="Ketamine and esketamine order check (sign)",
            description=(
                "When an order for IV ketamine or intranasal esketamine is signed, checks the indication, "
                "treatment resistance, depression severity, bipolar cover, contraindications, dose and "
                "course of treatment against the evidence, and says what is missing."
            ),
            usage_requirements=_USAGE,
            request_schema="OrderSignRequest",
        ),
    )
}


def discovery_document() -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.discovery_entry() for s in SERVICES.values()]}
