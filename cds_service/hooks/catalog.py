"""The CDS services this server offers: each is a descriptor (``ServiceDefinition``) plus functions.

What differs from one service to another is data on its descriptor: the hook it answers, its prefetch
templates, what it evaluates (``subjects``: every ketamine draft order, the selected ones, or the patient), the
rule set it runs (``rules``), and optionally a ``screen``: prefetch keys to read first and a test that ends the
call early (no cards) without reading the rest. The one pipeline (``hooks.pipeline``) runs every service the
same way; nothing in it branches on the hook.

Templates use only what CDS Hooks 2.0 allows in a prefetch (cds-hooks-spec.md §3): the tokens
``{{context.patientId}}`` (root-level context fields only), instance reads, type searches with reference
and token parameters (equality, comma = OR), ``_count``, ``_sort`` and ``_include``. 2.0 has no token for
"today", so no template carries a date bound; latest-value searches ask for the newest results instead
(``_sort=-date&_count=N``) and need only the first page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from cds_service.fhir.prefetch import PrefetchKey
from cds_service.hooks.subjects import DraftOrders, Subjects, ThePatient
from cds_service.knowledge.model import Knowledge
from cds_service.order.model import OrderStage
from cds_service.record import kinds
from cds_service.record.model import PatientRecord
from cds_service.rules.engine import ORDER_RULES, RuleSet
from cds_service.rules.patient_view import PATIENT_VIEW_RULES, has_depressive_disorder
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


S = TypeVar("S")

# The prefetch templates of the order services.
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

# The prefetch templates of patient-view (clinical-rules.md §11): what the course status and the TRD candidate
# read, and what the order rules of §2-3 read to rule out a critical finding. Body weight is left out (it only
# sets a dose); ECT is read from the whole Procedure history (recognised by ICD-10-PCS code or by its words, so a
# search by code would miss the locally coded ones).
_PATIENT_VIEW_KEYS = frozenset(
    {"patient", "conditions", "medicationRequests", "medicationStatements", "bloodPressure", "depressionScores",
     "depressionScoresByCode", "pregnancyTests", "administrations", "allergies", "lactation"}
)  # fmt: skip
PATIENT_VIEW_PREFETCH: tuple[PrefetchKey, ...] = (
    *(key for key in PREFETCH if key.key in _PATIENT_VIEW_KEYS),
    PrefetchKey("procedures", "Procedure?patient={{context.patientId}}", kinds.PROCEDURES, required=False),
)

_USAGE = (
    "For FHIR R4 MedicationRequest orders. Send the prefetch keys (a key the EHR cannot satisfy may be left "
    "out: the service then reads it from fhirServer, which must be on its allowlist). Patient, conditions "
    "and medicationRequests are required; other missing data is named on the cards."
)


@dataclass(frozen=True)
class Screen:
    """Read the prefetch ``keys`` first and build the record from them alone; when ``go_on(record, kb, now)``
    says no, the call ends with no cards and nothing else of the prefetch is read (or fetched).

    For a service most of whose calls concern patients it has nothing to say about: patient-view decides from
    the conditions whether the patient is depressed before it reads the rest. ``note``: the audit note then.
    """

    keys: frozenset[str]
    go_on: Callable[[PatientRecord, Knowledge, datetime], bool]
    note: str = "screened out"


@dataclass(frozen=True, slots=True)
class ServiceDefinition(Generic[S]):
    """One CDS service: its discovery entry, what it evaluates and with which rules.

    ``subjects`` finds what the service evaluates in the hook context and reads it into what its rules take
    (``S``: a ``MedicationOrder``, or the ``Patient``); ``rules`` is the rule set run on each subject.
    ``request_schema`` names the request's schema in ``openapi.yaml`` (components/schemas).
    """

    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str
    subjects: Subjects[S]
    rules: RuleSet[S]
    request_schema: str
    prefetch: tuple[PrefetchKey, ...] = PREFETCH
    screen: Screen | None = None

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "usageRequirements": self.usage_requirements,
            "prefetch": {p.key: p.template for p in self.prefetch},
        }


SERVICES: Mapping[str, ServiceDefinition[Any]] = {
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
            subjects=DraftOrders(OrderStage.SELECT, selected_only=True),
            rules=ORDER_RULES,
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
            subjects=DraftOrders(OrderStage.SIGN),
            rules=ORDER_RULES,
            request_schema="OrderSignRequest",
        ),
        ServiceDefinition(
            id="ketamine-patient-view",
            hook="patient-view",
            title="Ketamine course tracker and treatment-resistant depression",
            description=(
                "When a chart is opened: for a patient in a ketamine or esketamine course, the course at a glance "
                "(sessions, depression scores against the pre-course baseline, what comes next and what is due); "
                "for a patient who meets the criteria for treatment-resistant depression and has none of the "
                "absolute contraindications, a quiet note with the options. Information only; no card for "
                "anyone else."
            ),
            usage_requirements=(
                "Send the prefetch keys (a key the EHR cannot satisfy may be left out: the service then reads it "
                "from fhirServer, which must be on its allowlist). Patient, conditions and medicationRequests are "
                "required. The conditions are read first: for a patient without a depressive disorder nothing "
                "else is read or fetched."
            ),
            subjects=ThePatient(),
            rules=PATIENT_VIEW_RULES,
            request_schema="PatientViewRequest",
            prefetch=PATIENT_VIEW_PREFETCH,
            screen=Screen(frozenset({"conditions"}), has_depressive_disorder, note="no depressive disorder"),
        ),
    )
}


def discovery_document() -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.discovery_entry() for s in SERVICES.values()]}
