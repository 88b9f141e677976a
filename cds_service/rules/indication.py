"""Indication and scope of the order (clinical-rules.md §0-1): from the order's reason, else the problem list.

* Scope: an order whose reason is positively outside psychiatry and chronic pain (anaesthesia, procedural
  sedation, acute pain, status epilepticus, agitation: value set ``order-reason-out-of-scope``) gets no cards
  at all (``out_of_scope``; the engine asks it first).
* The suicidal-ideation indication: an order reason naming suicidal ideation or behaviour, or an active
  suicidal-ideation Condition dated within ``indication.suicidal_ideation_days``; older active entries are a
  summary line (``suicidal_ideation``).
* An order with no reason whose dose looks like anaesthetic or sedation dosing gets one
  ``indication-undocumented`` card naming the dose, and no dose card (``anaesthetic_dose_without_reason``,
  read by the dose rules).
* Route: "route not stated: checked as IV" and "other routes are not covered" are checklist lines
  (``route_note``, also for the dose cards).

Also holds the small helpers every clinical rule module shares: which conditions count, which data could not
be obtained, which medication periods are current, names composed for a card summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder, Route
from cds_service.order.units import fmt
from cds_service.record import kinds
from cds_service.record.conditions import strip_negations
from cds_service.record.model import ConditionFact, Evidence, ExposurePeriod, PatientRecord
from cds_service.rules.course import course_under_way
from cds_service.rules.dosing import latest_weight, order_mg_per_kg
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, OrderRule, RuleOutcome


class IndicationKind(StrEnum):
    DEPRESSION = "depression"  # unipolar depressive disorder
    BIPOLAR_DEPRESSION = "bipolar-depression"
    PTSD = "ptsd"
    CHRONIC_PAIN = "chronic-pain"
    SUICIDAL_IDEATION = "suicidal-ideation"  # suicidal ideation with no depressive disorder on record
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
    suicidal_ideation: bool = False  # the suicidal-ideation indication of §0 holds (order reason or recent entry)

    @property
    def is_depression(self) -> bool:
        """TRD rules (section 1) apply to unipolar and bipolar depression only."""
        return self.kind in (IndicationKind.DEPRESSION, IndicationKind.BIPOLAR_DEPRESSION)

    @property
    def label(self) -> str:
        """Plain words for cards, e.g. "chronic pain (CRPS)", "depression with suicidal ideation"."""
        if self.kind is IndicationKind.CHRONIC_PAIN and self.pain_kind is not None:
            return f"chronic pain ({_PAIN_LABELS[self.pain_kind]})"
        if self.suicidal_ideation and self.kind is not IndicationKind.SUICIDAL_IDEATION:
            return f"{_KIND_LABELS[self.kind]} with suicidal ideation"
        return _KIND_LABELS[self.kind]


_KIND_LABELS = {
    IndicationKind.DEPRESSION: "depression",
    IndicationKind.BIPOLAR_DEPRESSION: "bipolar depression",
    IndicationKind.PTSD: "PTSD",
    IndicationKind.CHRONIC_PAIN: "chronic pain",
    IndicationKind.SUICIDAL_IDEATION: "suicidal ideation",
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
SUICIDAL_IDEATION = "suicidal-ideation"
# what an order's reason may name: the indications, then suicidal ideation (which alone is an indication too)
_REASON_KEYS = (*_PRIORITY, (SUICIDAL_IDEATION, IndicationKind.SUICIDAL_IDEATION, None))
OUT_OF_SCOPE = "order-reason-out-of-scope"
_DEPRESSIVE = frozenset({IndicationKind.DEPRESSION, IndicationKind.BIPOLAR_DEPRESSION})
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
    kinds.ALLERGIES: frozenset({kinds.ALLERGIES, "allergies", "AllergyIntolerance"}),
    kinds.LACTATION: frozenset({kinds.LACTATION, "lactation", "Observation"}),
    kinds.PROCEDURES: frozenset({kinds.PROCEDURES, "procedures", "Procedure"}),
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


def compose_names(names: Sequence[str], limit: int, fallback: str) -> str:
    """Names for a card summary, composed to fit ``limit`` characters and never cut inside a word.

    As many whole names as fit, then "and N more"; a name too long on its own is shortened to its part before
    the first comma or bracket ("Major depressive disorder, recurrent severe ..." -> "Major depressive
    disorder"), and when even that does not fit, ``fallback`` (e.g. "a psychotic disorder") stands for it.
    """
    shown = [_fitting(n, limit, fallback) for n in dict.fromkeys(n for n in names if n)]
    if not shown:
        return fallback
    for count in range(len(shown), 0, -1):
        rest = len(shown) - count
        text = ", ".join(shown[:count]) + (f" and {rest} more" if rest else "")
        if len(text) <= limit:
            return text
    return fallback if len(shown) == 1 else f"{fallback} and {len(shown) - 1} more"


def _fitting(name: str, limit: int, fallback: str) -> str:
    name = " ".join(name.split())
    if len(name) <= limit:
        return name
    head = name.split(",", 1)[0].split(" (", 1)[0].strip()
    return head if 0 < len(head) <= limit else fallback


def condition_names(conditions: Iterable[ConditionFact]) -> str:
    """Every label, once, for a checklist line (checklist lines are not limited to 140 characters)."""
    return ", ".join(dict.fromkeys(c.label for c in conditions))


def evidence_note(evidence: Iterable[Evidence]) -> str:
    return "; ".join(e.describe() for e in evidence)


# ---------------------------------------------------------------- the indication


def determine_indication(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime | None = None
) -> Indication:
    """Order reason first; else active conditions, depression > PTSD > chronic pain.

    A depression indication becomes bipolar depression when bipolar disorder is on record (whatever its
    clinical status, clinical-rules.md §2). An order reason of suicidal ideation is depression when a
    depressive disorder is active, else the suicidal-ideation indication. ``now`` enables the recent
    suicidal-ideation Condition of §0 (without it only the order's reason can name suicidal ideation).
    """
    ideation = suicidal_ideation(record, order, kb, now) if now is not None else _ideation_reason(order, kb)
    found = _from_order(order, kb) or _from_referenced_conditions(record, order)
    if found is None:
        found = _from_problem_list(record)
    elif found.kind is IndicationKind.SUICIDAL_IDEATION:
        listed = _from_problem_list(record)
        if listed.kind in _DEPRESSIVE:  # suicidal ideation in depression: the depression rules apply
            found = Indication(listed.kind, "order", None, (*found.evidence, *listed.evidence), found.by_name)
    if found.kind is IndicationKind.NONE and ideation.current:
        found = Indication(IndicationKind.SUICIDAL_IDEATION, ideation.source, None, ideation.evidence)
    if found.kind is IndicationKind.DEPRESSION:
        bipolar = (
            *conditions_in(record, "bipolar", active_only=False),
            *conditions_in(record, "bipolar-depression", active_only=False),
        )
        if bipolar:
            ev = tuple(dict.fromkeys((*found.evidence, *(c.evidence() for c in bipolar))))
            found = Indication(IndicationKind.BIPOLAR_DEPRESSION, found.source, None, ev, found.by_name)
    if ideation.current and not found.suicidal_ideation:
        found = Indication(found.kind, found.source, found.pain_kind, found.evidence, found.by_name, True)
    return found


def _reason_texts(order: MedicationOrder) -> list[str]:
    return [t for t in (order.reason_text, *(c.display for c in order.reason_codes)) if t]


def _from_order(order: MedicationOrder, kb: Knowledge) -> Indication | None:
    if not order.reason_codes and not order.reason_text:
        return None
    texts = [strip_negations(t) for t in _reason_texts(order)]
    shown = _reason_shown(order)
    ref = order.reference.split("/", 1)[-1] if order.reference else None
    for by_name in (False, True):
        for key, kind, pain in _REASON_KEYS:
            vs = kb.valuesets.get(key)
            if vs is None:
                continue
            hit = vs.matches_text(texts) if by_name else vs.matches_code(order.reason_codes)
            if hit:
                how = " (recognised by name only)" if by_name else ""
                ev = Evidence("MedicationRequest", ref, None, f"order reason: {shown}{how}")
                return Indication(kind, "order", pain, (ev,), by_name=by_name)
    return None


def _reason_shown(order: MedicationOrder) -> str:
    shown = order.reason_text or next((c.display for c in order.reason_codes if c.display), None)
    return shown or ", ".join(c.code for c in order.reason_codes) or "none given"


def _from_referenced_conditions(record: PatientRecord, order: MedicationOrder) -> Indication | None:
    """``reasonReference`` to a Condition on the problem list (any clinical status: the order names it)."""
    ids = {ref.split("/", 1)[-1] for ref in order.reason_references if ref.startswith("Condition/")}
    if not ids:
        return None
    named = [c for c in record.conditions if c.resource_id in ids and counts(c)]
    for key, kind, pain in _REASON_KEYS:
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


# ---------------------------------------------------------------- scope (§0)


def out_of_scope(order: MedicationOrder, kb: Knowledge) -> bool:
    """The order's reason is anaesthesia, sedation, acute pain, status epilepticus or agitation, and nothing in
    it names a psychiatric or chronic-pain indication: such an order gets no cards (clinical-rules.md §0)."""
    vs = kb.valuesets.get(OUT_OF_SCOPE)
    if vs is None or not (order.reason_codes or order.reason_text):
        return False
    texts = [strip_negations(t) for t in _reason_texts(order)]
    if not (vs.matches_code(order.reason_codes) or vs.matches_text(texts)):
        return False
    return _from_order(order, kb) is None


@dataclass(frozen=True)
class SuicidalIdeation:
    """The suicidal-ideation indication of §0: ``current`` when it holds; ``older`` active entries are a line."""

    current: bool
    source: str | None = None  # "order" | "problem list"
    evidence: tuple[Evidence, ...] = ()
    older: tuple[ConditionFact, ...] = ()


def _ideation_reason(order: MedicationOrder, kb: Knowledge) -> SuicidalIdeation:
    vs = kb.valuesets.get(SUICIDAL_IDEATION)
    if vs is None:
        return SuicidalIdeation(False)
    texts = [strip_negations(t) for t in _reason_texts(order)]
    if vs.matches_code(order.reason_codes) or vs.matches_text(texts):
        ref = order.reference.split("/", 1)[-1] if order.reference else None
        return SuicidalIdeation(
            True, "order", (Evidence("MedicationRequest", ref, None, f"order reason: {_reason_shown(order)}"),)
        )
    return SuicidalIdeation(False)


def suicidal_ideation(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> SuicidalIdeation:
    """Order reason naming suicidal ideation or behaviour, or an active entry dated within
    ``indication.suicidal_ideation_days``; undated or older active entries are returned in ``older``."""
    by_reason = _ideation_reason(order, kb)
    since = now - timedelta(days=kb.number("indication.suicidal_ideation_days"))
    active = conditions_in(record, SUICIDAL_IDEATION)
    referenced = {r.split("/", 1)[-1] for r in order.reason_references if r.startswith("Condition/")}
    recent = tuple(c for c in active if (c.when is not None and since <= c.when <= now) or c.resource_id in referenced)
    older = tuple(c for c in active if c not in recent)
    if by_reason.current:
        return SuicidalIdeation(True, "order", (*by_reason.evidence, *(c.evidence() for c in recent)), older)
    if recent:
        return SuicidalIdeation(True, "problem list", tuple(c.evidence() for c in recent), older)
    return SuicidalIdeation(False, older=older)


def route_note(order: MedicationOrder) -> str | None:
    """What the cards say about the route: an assumption, or that the rules do not cover it."""
    if order.route is Route.UNSPECIFIED:
        return (
            "route not stated: checked as IV"
            if order.drug is Drug.KETAMINE
            else "route not stated: checked as intranasal"
        )
    if not (order.is_iv_ketamine or order.is_intranasal_esketamine):
        return "these rules cover IV ketamine and intranasal esketamine only: no dose check for this route"
    return None


def anaesthetic_dose_without_reason(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> str | None:
    """The dose, in words, of an IV ketamine order with no reason whose single dose is at least
    ``iv.anesthetic_mg_per_kg`` given over less than ``indication.anaesthetic_bolus_minutes``; None otherwise.

    Such an order looks like anaesthetic or sedation dosing: it gets one ``indication-undocumented`` card that
    names the dose, and no dose card or rewrite suggestion (the dose rules ask this function).
    """
    if not order.is_iv_ketamine or order.reason_codes or order.reason_text or order.reason_references:
        return None
    minutes = order.duration_minutes
    if order.dose is None or minutes is None or minutes >= kb.number("indication.anaesthetic_bolus_minutes"):
        return None
    weight = latest_weight(record, kb, now)
    mg_per_kg = order_mg_per_kg(order, weight.kg if weight else None)
    if mg_per_kg is None or mg_per_kg < kb.number("iv.anesthetic_mg_per_kg") - 1e-9:
        return None
    per_kg = "" if order.dose.as_written.endswith("mg/kg") else f" ({fmt(round(mg_per_kg, 2))} mg/kg)"
    return f"{order.dose.as_written}{per_kg} over {fmt(minutes)} min"


# ---------------------------------------------------------------- rules


def indication_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``indication-undocumented``: no depression, bipolar depression, PTSD, suicidal-ideation or chronic-pain
    indication; or an order with no reason at an anaesthetic-looking dose. Also the route and the older
    suicidal-ideation checklist lines."""
    checks = [*_route_checks(order), *_older_ideation_checks(record, order, kb, now)]
    anaesthetic = anaesthetic_dose_without_reason(record, order, kb, now)
    found = determine_indication(record, order, kb, now)
    if anaesthetic is not None:
        finding = Finding(
            topic="indication-undocumented",
            indicator=Indicator.WARNING,
            facts={"dose": anaesthetic},
            detail=(f"- The order gives {anaesthetic} and states no reason: anaesthetic or sedation dosing?",),
            variant="anaesthetic-dose",
        )
        note = f"no reason on an order of {anaesthetic}"
        checks.insert(0, Check("Indication", CheckStatus.NOT_MET, note, found.evidence, reads=(kinds.CONDITIONS,)))
        return RuleOutcome(findings=(finding,), checks=tuple(checks))
    if found.kind is not IndicationKind.NONE:
        note = f"{found.label} (from the {found.source})"
        checks.insert(0, Check("Indication", CheckStatus.MET, note, found.evidence, reads=(kinds.CONDITIONS,)))
        return RuleOutcome(checks=tuple(checks))
    problem = data_problem(record, kinds.CONDITIONS)
    reason = order.reason_text or next((c.display or c.code for c in order.reason_codes), None)
    detail = [f"- Reason on the order: {reason or 'none given'} (not a recognised indication)"]
    if problem:
        detail.append(f"- The problem list could not be read completely: {problem}")
    finding = Finding(
        topic="indication-undocumented",
        indicator=Indicator.WARNING,
        facts={"problem": problem or ""},
        detail=tuple(detail),
        variant="unobtainable" if problem else "default",
    )
    if problem:
        check = Check(
            "Indication", CheckStatus.UNDOCUMENTED, "problem list could not be obtained", reads=(kinds.CONDITIONS,)
        )
    else:
        note = "no depression, PTSD, suicidal ideation or chronic pain on the order or the problem list"
        check = Check("Indication", CheckStatus.NOT_MET, note, reads=(kinds.CONDITIONS,))
    return RuleOutcome(findings=(finding,), checks=(check, *checks))


def _route_checks(order: MedicationOrder) -> tuple[Check, ...]:
    note = route_note(order)
    return (Check("Route", CheckStatus.MET, note),) if note else ()


def _older_ideation_checks(
    record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime
) -> tuple[Check, ...]:
    ideation = suicidal_ideation(record, order, kb, now)
    if ideation.current or not ideation.older:
        return ()
    days = fmt(kb.number("indication.suicidal_ideation_days"))
    note = f"on the problem list, not dated within the last {days} days: not read as the indication"
    return (Check("Suicidal ideation", CheckStatus.MET, note, tuple(c.evidence() for c in ideation.older)),)


def antidepressant_rule(record: PatientRecord, order: MedicationOrder, kb: Knowledge, now: datetime) -> RuleOutcome:
    """``antidepressant-not-concurrent``: unipolar depression (or suicidal ideation) and no current antidepressant.

    Never for bipolar depression (the mood stabiliser of §2 is the requirement there). IV ketamine: warning
    (augmentation, not monotherapy). Esketamine: info (label monotherapy for TRD since January 2025), but a
    warning for the suicidal-ideation indication (the label's use with an oral antidepressant).
    """
    criterion = "Concurrent antidepressant"
    reads = (kinds.MEDICATIONS,)
    found = determine_indication(record, order, kb, now)
    if found.kind not in (IndicationKind.DEPRESSION, IndicationKind.SUICIDAL_IDEATION):
        why = (
            "bipolar depression: lithium or valproate is required instead"
            if found.kind is IndicationKind.BIPOLAR_DEPRESSION
            else f"indication: {found.label}"
        )
        return RuleOutcome(checks=(Check(criterion, CheckStatus.NOT_APPLICABLE, why, reads=reads),))
    current = current_with_role(record, "antidepressant", now)
    if current:
        names = ", ".join(sorted({p.ingredient for p in current}))
        ev = tuple(p.uses[0].evidence() for p in current if p.uses)
        return RuleOutcome(checks=(Check(criterion, CheckStatus.MET, f"taking {names}", ev, reads=reads),))
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
    esketamine = order.drug is Drug.ESKETAMINE
    if problem:
        variant, indicator = "unobtainable", Indicator.WARNING
    elif esketamine and found.suicidal_ideation:
        variant, indicator = "esketamine-suicidal-ideation", Indicator.WARNING
    elif esketamine:
        variant, indicator = "esketamine", Indicator.INFO
    else:
        variant, indicator = "default", Indicator.WARNING
    finding = Finding(
        topic="antidepressant-not-concurrent",
        indicator=indicator,
        facts={"drug": order.drug.value},
        detail=tuple(detail),
        evidence=evidence,
        variant=variant,
    )
    status = CheckStatus.UNDOCUMENTED if problem else CheckStatus.NOT_MET
    note = "medication history could not be obtained" if problem else "no current antidepressant on record"
    course = course_under_way(record, kb, now, order.drug.value)
    if course is not None:  # §1: decided when the course began; not repeated as a card during it
        note += f"; not repeated as a card during the course that began on {day(course.start)}"
        return RuleOutcome(checks=(Check(criterion, status, note, evidence, reads=reads),))
    return RuleOutcome(findings=(finding,), checks=(Check(criterion, status, note, evidence, reads=reads),))


RULES: tuple[OrderRule, ...] = (indication_rule, antidepressant_rule)
