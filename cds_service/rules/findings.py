"""What a rule returns. Findings carry no wire format; cards are rendered from them at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import Evidence, PatientRecord


class Indicator(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


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
    """Suggest rewriting the draft order to ``dose_mg`` infused over ``duration_minutes``."""

    dose_mg: float
    duration_minutes: float


SuggestionIntent = DeleteOrder | CreateAssessment | RewriteDose


@dataclass(frozen=True, slots=True)
class Finding:
    """One card's worth of judgement.

    ``topic`` is a public topic code of clinical-rules.md. ``variant`` selects the card text in the
    knowledge base (e.g. psychosis "active" vs "history"); ``facts`` fill that text's placeholders.
    ``detail`` holds rule-computed markdown lines (e.g. the table of antidepressant trials).
    """

    topic: str
    indicator: Indicator
    facts: Mapping[str, str] = field(default_factory=dict)
    detail: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    suggestions: tuple[SuggestionIntent, ...] = ()
    variant: str = "default"


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
class RuleOutcome:
    findings: tuple[Finding, ...] = ()
    checks: tuple[Check, ...] = ()


EMPTY = RuleOutcome()


class Rule(Protocol):
    """A rule is a pure function; ``now`` is the evaluation instant (fixed in tests)."""

    def __call__(
        self, record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
    ) -> RuleOutcome: ...
