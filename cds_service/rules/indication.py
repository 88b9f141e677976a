"""Indication of the order (clinical-rules.md §0-1): from the order's reason, else the problem list.

Also holds the small helpers every Rules I module shares: which conditions count, which data
could not be obtained, which medication periods are current.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import MedicationOrder
from cds_service.record import kinds
from cds_service.record.model import ConditionFact, Evidence, ExposurePeriod, PatientRecord
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, Rule, RuleOutcome


class IndicationKind(StrEnum):
    DEPRESSION = "depression"  # unipolar depressive disorder
    BIPOLAR_DEPRESSION = "bipolar-depression"
    PTSD = "ptsd"
    CHRONIC_PAIN = "chronic-pain"
    NONE = "none"


class PainKind(StrEnum):
    CRPS = "crps"
    SPINAL_CORD_INJURY = "spinal-cord-injury"
    OTHER = "other"


@dataclass(frozen=True)
class Indication:
    kind: IndicationKind
    source: str | None  # "order" (reasonCode/reasonReference) | "problem list" | None
    pain_kind: PainKind | None = None
    evidence: tuple[Evidence, ...] = ()
    by_name: bool = False  # the order reason was recognised by its text only (no matching code)

    @property
    def is_depression(self) -> bool:
        """TRD rules (section 1) apply to unipolar and bipolar depression only."""
        return self.kind in (IndicationKind.DEPRESSION, IndicationKind.BIPOLAR_DEPRESSION)

    @property
    def label(self) -> str:
        """Plain words for cards, e.g. "chronic pain (CRPS)"."""
        if self.kind is IndicationKind.CHRONIC_PAIN and self.pain_kind is not None:
            return f"chronic pain ({_PAIN_LABELS[self.pain_kind]})"
        return _KIND_LABELS[self.kind]


_KIND_LABELS = {
    IndicationKind.DEPRESSION: "depression",
    IndicationKind.BIPOLAR_DEPRESSION: "bipolar depression",
    IndicationKind.PTSD: "PTSD",
    IndicationKind.CHRONIC_PAIN: "chronic pain",
    IndicationKind.NONE: "no documented indication",
}
_PAIN_LABELS = {PainKind.CRPS: "CRPS", PainKind.SPINAL_CORD_INJURY: "spinal cord injury", PainKind.OTHER: "other"}

# Value-set keys in priority order (depression > PTSD > chronic pain; CRPS > SCI > other pain).
_PRIORITY: tuple[tuple[str, IndicationKind, PainKind | None], ...] = (
    ("bipolar-depression", IndicationKind.BIPOLAR_DEPRESSION, None),
    ("depression", IndicationKind.DEPRESSION, None),
    ("ptsd", IndicationKind.PTSD, None),
    ("chronic-pain-crps", IndicationKind.CHRONIC_PAIN, PainKind.CRPS),
    ("chronic-pain-sci", IndicationKind.CHRONIC_PAIN, PainKind.SPINAL_CORD_INJURY),
    ("chronic-pain-other", IndicationKind.CHRONIC_PAIN, PainKind.OTHER),
)
_BIPOLAR_KEYS = ("bipolar", "bipolar-depression")
_EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})

# DataGap.key values (prefetch keys or resource types) that mean a data kind is incomplete.
_GAP_KEYS: dict[str, frozenset[str]] = {
    kinds.PATIENT: frozenset({"patient", "Patient"}),
    kinds.CONDITIONS: frozenset({"conditions", "Condition"}),
    kinds.MEDICATIONS: frozenset(
        {
            "medications",
            "medicationRequests",
            "medicationStatements",
            "medicationReference",
            "MedicationRequest",
            "MedicationStatement",
        }
    ),
    kinds.BLOOD_PRESSURE: frozenset({kinds.BLOOD_PRESSURE, "bloodPressure", "Observation"}),
    kinds.WEIGHT: frozenset({kinds.WEIGHT, "bodyWeight", "Observation"}),
    kinds.SCORES: frozenset({kinds.SCORES, "depressionScores", "depressionScoresByCode", "Observation"}),
    kinds.PREGNANCY_TESTS: frozenset({kinds.PREGNANCY_TESTS, "pregnancyTests", "Observation"}),
    kinds.ADMINISTRATIONS: frozenset({kinds.ADMINISTRATIONS, "administrations", "MedicationAdministration"}),
}


# ---------------------------------------------------------------- shared helpers


def counts(condition: ConditionFact) -> bool:
    """A condition is usable at all unless refuted or entered in error (clinical-rules.md §3)."""
    return condition.verification_status not in _EXCLUDED_VERIFICATION


def conditions_in(record: PatientRecord, category: str, *, active_only: bool = True) -> tuple[ConditionFact, ...]:
    """Conditions of a knowledge-base category, refuted/entered-in-error ones left out."""
    return tuple(c for c in record.conditions_in(category, active_only=active_only) if counts(c))


def data_problem(record: PatientRecord, kind: str) -> str | None:
    """Why data of ``kind`` (a name in ``record.kinds``) is missing or incomplete; None when complete."""
    reasons = [g.reason for g in record.data_gaps if g.key in _GAP_KEYS.get(kind, frozenset({kind}))]
    if kind not in record.available and not reasons:
        reasons.append("it was not obtained from the EHR")
    return "; ".join(dict.fromkeys(reasons)) or None


def is_current(period: ExposurePeriod, now: datetime) -> bool:
    """Taken now: ongoing, or a recorded end that is not yet past."""
    return period.ongoing or (period.end is not None and period.end >= now)


def current_with_role(record: PatientRecord, role: str, now: datetime) -> tuple[ExposurePeriod, ...]:
    return tuple(p for p in record.exposures_with_role(role) if is_current(p, now))


def day(when: datetime | None) -> str:
    return when.date().isoformat() if when else "date unknown"


def short(text: str, limit: int = 60) -> str:
    """Text for a card summary placeholder: cut at ``limit`` characters so summaries stay under 140."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def evidence_note(evidence: Iterable[Evidence]) -> str:
    return "; ".join(e.describe() for e in evidence)


# ---------------------------------------------------------------- the indication


def determine_indication(record: PatientRecord, order: MedicationOrder, kb: Knowledge) -> Indication:
    """Order reason first; else active conditions, depression > PTSD > chronic pain.

    A depression indication becomes bipolar depression when bipolar disorder is active.
    """
    found = _from_order(order, kb) or _from_referenced_conditions(record, order)
    if found is None:
        found = _from_problem_list(record)
    if found.kind is IndicationKind.DEPRESSION:
        bipolar = [c for key in _BIPOLAR_KEYS for c in conditions_in(record, key)]
        if bipolar:
            ev = tuple(dict.fromkeys((*found.evidence, *(c.evidence() for c in bipolar))))
            return Indication(IndicationKind.BIPOLAR_DEPRESSION, found.source, None, ev, found.by_name)
    return found


def _from_order(order: MedicationOrder, kb: Knowledge) -> Indication | None:
    if not order.reason_codes and not order.reason_text:
        return None
    texts = [order.reason_text, *(c.display for c in order.reason_codes)]
    shown = order.reason_text or next((c.display for c in order.reason_codes if c.display), None)
    if shown is None:
        shown = ", ".join(c.code for c in order.reason_codes)
    ref = order.reference.split("/", 1)[-1] if order.reference else None
    for by_name in (False, True):
        for key, kind, pain in _PRIORITY:
            vs = kb.valuesets.get(key)
            if vs is None:
                continue
            hit = vs.matches_text(texts) if by_name else vs.matches_code(order.reason_codes)
            if hit:
                how = " (recognised by name only)" if by_name else ""
                ev = Evidence("MedicationRequest", ref, None, f"order reason: {shown}{how}")
                return Indication(kind, "order", pain, (ev,), by_name=by_name)
    return None


def _from_referenced_conditions(record: PatientRecord, order: MedicationOrder) -> Indication | None:
    """``reasonReference`` to a Condition on the problem list (any clinical status: the order names it)."""
    ids = {ref.split("/", 1)[-1] for ref in order.reason_references if ref.startswith("Condition/")}
    if not ids:
        return None
    named = [c for c in record.conditions if c.resource_id in ids and counts(c)]
    for key, kind, pain in _PRIORITY:
        hits = [c for c in named if key in c.categories]
        if hits:
            return Indication(kind, "order", pain, tuple(c.evidence() for c in hits))
    return None


def _from_problem_list(record: PatientRecord) -> Indication:
    for key, kind, pain in _PRIORITY:
        active = conditions_in(record, key)
        if active:
            return Indication(kind, "problem list", pain, tuple(c.evidence() for c in active))
    return Indication(IndicationKind.NONE, None)


# ---------------------------------------------------------------- rules


def indication_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``indication-undocumented``: no depression, bipolar depression, PTSD or chronic-pain indication."""
    found = determine_indication(record, order, kb)
    if found.kind is not IndicationKind.NONE:
        note = f"{found.label} (from the {found.source})"
        return RuleOutcome(checks=(Check("Indication", CheckStatus.MET, note, found.evidence),))
    problem = data_problem(record, kinds.CONDITIONS)
    reason = order.reason_text or next((c.display or c.code for c in order.reason_codes), None)
    facts = {"order_reason": reason or "none", "problem": problem or ""}
    detail = [f"- Reason on the order: {reason or 'none given'} (not a recognised indication)"]
    if problem:
        detail.append(f"- The problem list could not be read completely: {problem}")
    finding = Finding(
        topic="indication-undocumented",
        indicator=Indicator.WARNING,
        facts=facts,
        detail=tuple(detail),
        variant="unobtainable" if problem else "default",
    )
    note = "problem list could not be obtained" if problem else "no qualifying diagnosis on the order or problem list"
    status = CheckStatus.UNDOCUMENTED if problem else CheckStatus.NOT_MET
    return RuleOutcome(findings=(finding,), checks=(Check("Indication", status, note),))


def antidepressant_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``antidepressant-not-concurrent``: depression indication and no current antidepressant."""
    criterion = "Concurrent antidepressant"
    found = determine_indication(record, order, kb)
    if not found.is_depression:
        return RuleOutcome(checks=(Check(criterion, CheckStatus.NOT_APPLICABLE, f"indication: {found.label}"),))
    current = current_with_role(record, "antidepressant", now)
    if current:
        names = ", ".join(sorted({p.ingredient for p in current}))
        ev = tuple(p.uses[0].evidence() for p in current if p.uses)
        return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, f"taking {names}", ev),))
    problem = data_problem(record, kinds.MEDICATIONS)
    last = max(
        (p for p in record.exposures_with_role("antidepressant") if p.end is not None),
        key=lambda p: p.end or now,
        default=None,
    )
    detail: list[str] = []
    evidence: tuple[Evidence, ...] = ()
    if last is not None:
        detail.append(f"- Last antidepressant on record: {last.ingredient}, ended {day(last.end)}")
        evidence = tuple(u.evidence() for u in last.uses[:1])
    if problem:
        detail.append(f"- Medication history could not be read completely: {problem}")
    finding = Finding(
        topic="antidepressant-not-concurrent",
        indicator=Indicator.WARNING,
        facts={"drug": order.drug.value, "problem": problem or ""},
        detail=tuple(detail),
        evidence=evidence,
        variant="unobtainable" if problem else "default",
    )
    status = CheckStatus.UNDOCUMENTED if problem else CheckStatus.NOT_MET
    note = "medication history could not be obtained" if problem else "no current antidepressant on record"
    return RuleOutcome(findings=(finding,), checks=(Check(criterion, status, note, evidence),))


RULES: tuple[Rule, ...] = (indication_rule, antidepressant_rule)
