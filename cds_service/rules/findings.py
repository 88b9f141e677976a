"""What a rule returns. Findings carry no wire format; cards are rendered from them at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar

from cds_service.knowledge.model import Indicator, Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import Evidence, PatientRecord


class CheckStatus(StrEnum):
    """One line of the eligibility-summary checklist."""

    MET = "met"
    NOT_MET = "not met"
    UNDOCUMENTED = "not documented"
    NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True, slots=True)
class DeleteOrder:
    """Suggest removing the draft order (critical cards)."""


@dataclass(frozen=True, slots=True)
class CreateAssessment:
    """Suggest ordering an assessment: ``kind`` is a key of the knowledge base's assessment orders."""

    kind: str  # "phq9" | "vital-signs"


@dataclass(frozen=True, slots=True)
class RewriteDose:
    """Suggest rewriting the draft order to ``dose_mg`` infused over ``duration_minutes`` and, when
    ``per_week`` is set, to that many infusions a week (the frequency deviated too)."""

    dose_mg: float
    duration_minutes: float
    per_week: int | None = None


SuggestionIntent = DeleteOrder | CreateAssessment | RewriteDose


@dataclass(frozen=True, slots=True)
class Finding:
    """One card's worth of judgement.

    ``topic`` is a public topic code of clinical-rules.md. ``variant`` selects the card text in the
    knowledge base (e.g. psychosis "active" vs "history"); ``facts`` fill that text's placeholders.
    ``detail`` holds rule-computed markdown lines (e.g. the table of antidepressant trials). ``evidence`` is
    listed on the card (what, value, date); ``audit`` are further records the finding rests on that the card
    does not list: both go, with their FHIR ids, to the card's audit extension only.
    """

    topic: str
    indicator: Indicator
    facts: Mapping[str, str] = field(default_factory=dict)
    detail: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    suggestions: tuple[SuggestionIntent, ...] = ()
    variant: str = "default"
    audit: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """A checklist line for the eligibility-summary card.

    ``criterion`` names what was looked for in a prescriber's words ("Psychosis", "Blood pressure"). A ``MET``
    check with no note and no evidence means "looked for and not found in the record". ``reads`` names the
    record kinds (``record/kinds.py``) the line's verdict rests on, so that the summary can say when related
    records were set aside ("not found in the records that could be read (2 ... could not be read)").
    """

    criterion: str
    status: CheckStatus
    note: str
    evidence: tuple[Evidence, ...] = ()
    reads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MissingItem:
    """One thing the dose and eligibility checks need and the record lacks (clinical-rules.md §8a).

    The engine gathers every rule's items into the one ``pre-dose-data-missing`` card: ``line`` is its line in a
    prescriber's words, saying what was found instead ("No blood pressure in the last 30 days; last 165/102
    mmHg on 2026-10-01, at or above 160/100"); ``assessment`` is a key of the knowledge base's assessment
    orders, the one suggestion for the item (None: nothing to order). ``key`` names the item ("blood-pressure",
    "body-weight", "depression-score", "birth-date"): one line per key, the first rule's.
    """

    key: str
    line: str
    assessment: str | None = None
    evidence: tuple[Evidence, ...] = ()
    what: str = ""  # the item in the card's summary ("blood pressure"); default: the key in words


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    findings: tuple[Finding, ...] = ()
    checks: tuple[Check, ...] = ()
    missing: tuple[MissingItem, ...] = ()


EMPTY = RuleOutcome()


@dataclass(frozen=True, slots=True)
class Patient:
    """What a service with no draft order evaluates (patient-view): the patient of the hook call."""

    reference: str  # "Patient/<id>"


S_contra = TypeVar("S_contra", contravariant=True)


class Rule(Protocol[S_contra]):
    """A rule is a pure function of (record, what is evaluated, knowledge, now) that returns findings.

    What is evaluated is the service's subject: the draft order (``MedicationOrder``) for the order
    services, the patient (``Patient``) for a service with no order. ``now`` is the evaluation instant
    (fixed in tests).
    """

    def __call__(self, record: PatientRecord, subject: S_contra, kb: Knowledge, now: datetime, /) -> RuleOutcome: ...


OrderRule = Rule[MedicationOrder]
PatientRule = Rule[Patient]
