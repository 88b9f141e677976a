"""Indication of the order (clinical-rules.md §0-1): from the order's reason, else the problem list."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record.model import Evidence, PatientRecord
from cds_service.rules.findings import Rule


class IndicationKind(str, Enum):
    DEPRESSION = "depression"  # unipolar depressive disorder
    BIPOLAR_DEPRESSION = "bipolar-depression"
    PTSD = "ptsd"
    CHRONIC_PAIN = "chronic-pain"
    NONE = "none"


class PainKind(str, Enum):
    CRPS = "crps"
    SPINAL_CORD_INJURY = "spinal-cord-injury"
    OTHER = "other"


@dataclass(frozen=True)
class Indication:
    kind: IndicationKind
    source: str | None  # "order" (reasonCode/reasonReference) | "problem list" | None
    pain_kind: PainKind | None = None
    evidence: tuple[Evidence, ...] = ()

    @property
    def is_depression(self) -> bool:
        """TRD rules (section 1) apply to unipolar and bipolar depression only."""
        return self.kind in (IndicationKind.DEPRESSION, IndicationKind.BIPOLAR_DEPRESSION)


def determine_indication(record: PatientRecord, order: MedicationOrder, kb: Knowledge) -> Indication:
    """Order reason first; else active conditions, depression > PTSD > chronic pain."""
    raise NotImplementedError  # implemented with the section 1 rules


RULES: tuple[Rule, ...] = ()
