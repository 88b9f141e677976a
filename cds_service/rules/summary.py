"""The eligibility-summary card (clinical-rules.md §8): one compact checklist, in a prescriber's words.

Every rule contributes ``Check`` lines. They are laid out so that a clinician reads the card in one screen:

* **Needs attention**: the lines not met or not documented, one each, first;
* **Checked**: the lines met with a value ("Blood pressure: 128/82 mmHg on 2026-12-01, below 140/90"), then one
  line gathering what was looked for and not found ("Not found in the record: psychosis, pregnancy, ..."),
  then one line gathering what does not apply to this order;
* the monitoring requirements of the ordered drug (card text of the knowledge base, ``topics/summary.yaml``);
* what could not be read or was read with care: data gaps, invalid or set-aside records, deviations read
  safely, anything recognised by name only.

A line never says "met" or "not met": ``Check.note`` reads on its own. When records of the kinds a line rests
on (``Check.reads``) were set aside, the line says so ("not found in the records that could be read (2 blood
pressure records could not be read)"). No FHIR ids: the records behind the lines go to the card's audit
extension only (``Finding.audit``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder, Route
from cds_service.record import kinds
from cds_service.record.model import SET_ASIDE_SINGULAR, Evidence, PatientRecord, Recognition, SetAside
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator, MissingItem
from cds_service.rules.indication import Indication, determine_indication

TOPIC = "eligibility-summary"
_MAX_EVIDENCE = 2  # evidence items shown per checklist line
# Record kinds in a prescriber's words ("2 blood pressure records could not be read").
KIND_WORDS: dict[str, str] = {
    kinds.PATIENT: "patient",
    kinds.CONDITIONS: "condition",
    kinds.MEDICATIONS: "medication",
    kinds.BLOOD_PRESSURE: "blood pressure",
    kinds.WEIGHT: "weight",
    kinds.SCORES: "depression score",
    kinds.PREGNANCY_TESTS: "pregnancy test",
    kinds.ADMINISTRATIONS: "ketamine or esketamine administration",
    kinds.ALLERGIES: "allergy",
    kinds.LACTATION: "breastfeeding",
}
# Prefetch keys (and resource types) of data gaps in the same words.
GAP_WORDS: dict[str, str] = {
    "bloodPressure": "blood pressure",
    "bodyWeight": "weight",
    "depressionScores": "depression score",
    "pregnancyTests": "pregnancy test",
    "medicationRequests": "medication order",
    "medicationStatements": "medication statement",
    "medications": "medication",
    "conditions": "condition",
    "allergies": "allergy",
    "lactation": "breastfeeding",
    "depressionScoresByCode": "depression score",
    "administrations": "ketamine or esketamine administration",
    "Observation": "observation",
    "MedicationAdministration": "ketamine or esketamine administration",
}
_ACRONYM_START = 2  # "PHQ-9", "BP", "hCG": criteria kept as written when they start with two capitals


def drug_label(order: MedicationOrder) -> str:
    if order.drug is Drug.KETAMINE and order.route is Route.UNSPECIFIED:
        return "ketamine (route not stated: checked as IV)"
    if order.is_iv_ketamine:
        return "IV ketamine"
    if order.is_intranasal_esketamine:
        return "intranasal esketamine"
    return f"{order.drug.value} ({order.route.value} route)"


def _variant(order: MedicationOrder) -> str:
    if order.is_iv_ketamine:
        return "iv-ketamine"
    if order.drug is Drug.ESKETAMINE:
        return "esketamine"
    return "ketamine-other-route"


def summarise(
    record: PatientRecord,
    order: MedicationOrder,
    kb: Knowledge,
    now: datetime,
    checks: tuple[Check, ...],
    findings: tuple[Finding, ...],
    missing: tuple[MissingItem, ...] = (),
) -> Finding:
    """The summary finding: the verdict in ``facts``, the compact checklist and the reporting in ``detail``."""
    indication = determine_indication(record, order, kb, now)
    critical = sum(f.indicator is Indicator.CRITICAL for f in findings)
    warning = sum(f.indicator is Indicator.WARNING for f in findings)
    gaps = len({m.key for m in missing})
    drug = drug_label(order)
    facts = {
        "drug": drug,
        "indication": indication.label,
        "critical": str(critical),
        "warning": str(warning),
        "missing": str(gaps),
        "verdict": verdict(critical, warning, gaps),
    }
    detail = checklist(record, checks)
    detail.extend(_monitoring(kb, order))
    detail.extend(_reporting(record, order, indication, checks))
    audit = tuple(dict.fromkeys(e for c in checks for e in c.evidence))
    return Finding(
        topic=TOPIC, indicator=Indicator.INFO, facts=facts, detail=tuple(detail), variant=_variant(order),
        audit=audit,
    )


def verdict(critical: int, warning: int, missing: int) -> str:
    """The summary's last words: what needs a look, or that nothing was found against the order."""
    parts = []
    if critical:
        parts.append(f"{critical} critical")
    if warning:
        parts.append(f"{warning} warning{'s' if warning != 1 else ''}")
    if missing:
        parts.append(f"{missing} item{'s' if missing != 1 else ''} to record")
    return ", ".join(parts) if parts else "no concerns found in the record"


# ---------------------------------------------------------------- the checklist


def checklist(record: PatientRecord, checks: Iterable[Check]) -> list[str]:
    """The compact checklist lines (markdown). A record is shown once, on the first line that rests on it."""
    attention: list[str] = []
    shown: list[str] = []
    not_found: list[str] = []
    not_applicable: list[str] = []
    seen: set[Evidence] = set()
    ordered = sorted(checks, key=lambda c: c.status not in (CheckStatus.NOT_MET, CheckStatus.UNDOCUMENTED))
    for check in ordered:
        aside = set_aside_note(record, check.reads)
        if check.status in (CheckStatus.NOT_MET, CheckStatus.UNDOCUMENTED):
            attention.append(_line(check, aside, seen))
        elif check.status is CheckStatus.NOT_APPLICABLE:
            not_applicable.append(_noun(check.criterion))
        elif check.note or check.evidence:
            shown.append(_line(check, aside, seen))
        elif aside:
            shown.append(f"- **{check.criterion}**: not found in the records that could be read ({aside})")
        else:
            not_found.append(_noun(check.criterion))
    lines: list[str] = []
    if attention:
        lines.extend(("**Needs attention**", *attention))
    rest = list(shown)
    if not_found:
        rest.append("- Not found in the record: " + ", ".join(dict.fromkeys(not_found)))
    if not_applicable:
        rest.append("- Not applicable to this order: " + ", ".join(dict.fromkeys(not_applicable)))
    if rest:
        lines.extend(("", "**Checked**", *rest) if lines else ("**Checked**", *rest))
    return lines


def _line(check: Check, aside: str, seen: set[Evidence]) -> str:
    text = f"- **{check.criterion}**: {check.note}" if check.note else f"- **{check.criterion}**"
    extra = _evidence(check.evidence, check.note, seen)
    if extra:
        text += f" ({extra})"
    if aside:
        text += f"; in the records that could be read ({aside})"
    return text


def _evidence(evidence: Iterable[Evidence], note: str, seen: set[Evidence]) -> str:
    """The evidence a line does not already say (its date in the note, or shown on an earlier line)."""
    items = [e for e in dict.fromkeys(evidence) if e not in seen and not _said(e, note)]
    seen.update(evidence)
    if not items:
        return ""
    shown = "; ".join(e.describe() for e in items[:_MAX_EVIDENCE])
    more = len(items) - _MAX_EVIDENCE
    return shown + (f"; and {more} more" if more > 0 else "")


def _said(evidence: Evidence, note: str) -> bool:
    return evidence.value in note or (evidence.when is not None and evidence.when.date().isoformat() in note)


def _noun(criterion: str) -> str:
    """A criterion inside a sentence: lower-cased unless it starts with an acronym ("PHQ-9", "MAOI")."""
    head = criterion[:_ACRONYM_START]
    if len(head) == _ACRONYM_START and head.isupper():
        return criterion
    return criterion[:1].lower() + criterion[1:]


def set_aside_note(record: PatientRecord, reads: Iterable[str]) -> str:
    """"2 blood pressure records could not be read" for the records of ``reads`` that were not used."""
    wanted = tuple(reads)
    return "; ".join(describe_set_aside(s) for s in record.set_aside_of(*wanted)) if wanted else ""


def describe_set_aside(aside: SetAside) -> str:
    noun = KIND_WORDS.get(aside.kind, aside.kind)
    if aside.count == 1:
        shown = f"1 {noun} record {SET_ASIDE_SINGULAR.get(aside.reason, aside.reason)}"
    else:
        shown = f"{aside.count} {noun} records {aside.reason}"
    if aside.details:
        shown += ": " + "; ".join(aside.details[:_MAX_EVIDENCE])
    return shown


# ---------------------------------------------------------------- monitoring and reporting


def _monitoring(kb: Knowledge, order: MedicationOrder) -> list[str]:
    """Monitoring requirements for the ordered drug: card text of the ``monitoring-*`` variants."""
    topic = kb.topics.get(TOPIC)
    text = topic.variants.get(f"monitoring-{_variant(order)}") if topic else None
    if text is None or not text.rationale.strip():
        return []
    return ["", f"**{text.summary or 'Monitoring'}**", *text.rationale.strip().splitlines()]


def _reporting(
    record: PatientRecord, order: MedicationOrder, indication: Indication, checks: Iterable[Check]
) -> list[str]:
    """What could not be read or was read with care: never values of other patients, never ids."""
    lines: list[str] = []
    lines.extend(f"- {kind_or_key(g.key).capitalize()} records could not be obtained: {g.reason}"
                 for g in record.data_gaps)  # fmt: skip
    lines.extend(f"- Left out as invalid: a {s.resource_type} ({s.problem})" for s in record.skipped)
    on_lines = {k for c in checks for k in c.reads}
    lines.extend(f"- {describe_set_aside(s)}" for s in record.set_aside if s.kind not in on_lines)
    lines.extend(
        f"- Read with care: {n.what} ({n.count} {KIND_WORDS.get(n.kind, n.kind)} record{'s' if n.count != 1 else ''})"
        for n in record.normalised
    )
    lines.extend(f"- The order: {note}" for note in (*order.normalised, *order.unreadable))
    names = _by_name(record, order)
    if indication.by_name:
        names.insert(0, f"the order's reason, read as {indication.label}")
    lines.extend(f"- Recognised by name only (no matching code, please check): {n}" for n in names)
    return ["", "**About the data**", *lines] if lines else []


def kind_or_key(key: str) -> str:
    """A data gap's key (record kind, prefetch key or resource type) in words: "bloodPressure" -> "blood pressure"."""
    if key in KIND_WORDS:
        return KIND_WORDS[key]
    if key in GAP_WORDS:
        return GAP_WORDS[key]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).lower()


def _by_name(record: PatientRecord, order: MedicationOrder) -> list[str]:
    found: list[str] = []
    if order.recognition is Recognition.NAME:
        found.append(f"the ordered drug ({order.drug.value})")
    for u in record.medication_uses:
        if u.recognition is Recognition.NAME:
            found.append(f"medication {u.ingredient}")
    for c in record.conditions:
        if c.recognition is Recognition.NAME and c.categories:
            read_as = ", ".join(sorted(k.replace("-", " ") for k in c.categories))
            found.append(f"condition {c.label}, read as {read_as}")
    return list(dict.fromkeys(found))
