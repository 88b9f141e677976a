"""The eligibility-summary card (clinical-rules.md §8): one checklist of every criterion.

The checklist comes from the ``Check`` lines of all rules (dose lines included), followed by the data
gaps, skipped resources and anything recognised by name only. The monitoring requirements are card
text of the drug's variant in the knowledge base (``topics/summary.yaml``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cds_service.knowledge.model import Knowledge
from cds_service.order.model import Drug, MedicationOrder
from cds_service.record.model import Evidence, PatientRecord, Recognition
from cds_service.rules.findings import Check, CheckStatus, Finding, Indicator
from cds_service.rules.indication import Indication, determine_indication

TOPIC = "eligibility-summary"
DOSE = "Dose"
_MAX_EVIDENCE = 3  # evidence items shown per checklist line


def drug_label(order: MedicationOrder) -> str:
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
) -> Finding:
    """The summary finding: counts in ``facts``, the checklist and the reporting sections in ``detail``."""
    indication = determine_indication(record, order, kb)
    critical = sum(f.indicator is Indicator.CRITICAL for f in findings)
    warning = sum(f.indicator is Indicator.WARNING for f in findings)
    undocumented = sum(c.status is CheckStatus.UNDOCUMENTED for c in checks)
    applicable = [c for c in checks if c.status is not CheckStatus.NOT_APPLICABLE]
    met = sum(c.status is CheckStatus.MET for c in applicable)
    drug = drug_label(order)
    facts = {
        "drug": drug,
        "indication": indication.label,
        "critical": str(critical),
        "warning": str(warning),
        "undocumented": str(undocumented),
        "met": str(met),
        "total": str(len(applicable)),
        "verdict": _verdict(critical, warning, undocumented),
    }
    detail = [
        f"**Checklist for {drug}** (indication: {indication.label}"
        + (f", from the {indication.source})" if indication.source else ")")
    ]
    detail.extend(_line(c) for c in checks)
    if not any(c.criterion == DOSE for c in checks):
        detail.append(f"- **{DOSE}**: not documented — the dose was not checked for this order")
    detail.append("")
    detail.extend(_monitoring(kb, order))
    detail.extend(_reporting(record, order, indication))
    # The evidence is shown line by line in the checklist, so the finding carries none of its own.
    return Finding(topic=TOPIC, indicator=Indicator.INFO, facts=facts, detail=tuple(detail), variant=_variant(order))


def _monitoring(kb: Knowledge, order: MedicationOrder) -> list[str]:
    """Monitoring requirements for the ordered drug: card text of the ``monitoring-*`` variants."""
    topic = kb.topics.get(TOPIC)
    text = topic.variants.get(f"monitoring-{_variant(order)}") if topic else None
    if text is None or not text.rationale.strip():
        return []
    return [f"**{text.summary or 'Monitoring'}**", *text.rationale.strip().splitlines()]


def _verdict(critical: int, warning: int, undocumented: int) -> str:
    parts = []
    if critical:
        parts.append(f"{critical} critical")
    if warning:
        parts.append(f"{warning} warning{'s' if warning != 1 else ''}")
    if undocumented:
        parts.append(f"{undocumented} not documented")
    return ", ".join(parts) if parts else "all checked criteria met"


def _line(check: Check) -> str:
    text = f"- **{check.criterion}**: {check.status.value}"
    if check.note:
        text += f" — {check.note}"
    shown = _evidence(check.evidence)
    return f"{text}{shown}"


def _evidence(evidence: Iterable[Evidence]) -> str:
    items = list(dict.fromkeys(evidence))
    if not items:
        return ""
    shown = "; ".join(e.describe() for e in items[:_MAX_EVIDENCE])
    more = f"; and {len(items) - _MAX_EVIDENCE} more" if len(items) > _MAX_EVIDENCE else ""
    return f". Evidence: {shown}{more}"


def _reporting(record: PatientRecord, order: MedicationOrder, indication: Indication) -> list[str]:
    """Data gaps, skipped resources and name-only recognitions: never values, only what and why."""
    lines: list[str] = []
    if record.data_gaps:
        lines.extend(("", "**Data that could not be obtained**"))
        lines.extend(f"- {g.key}: {g.reason}" for g in record.data_gaps)
    if record.skipped:
        lines.extend(("", "**Resources skipped as invalid**"))
        lines.extend(f"- {s.resource_type}: {s.problem}" for s in record.skipped)
    names = _by_name(record, order)
    if indication.by_name:
        names.insert(0, f"the order's reason, read as {indication.label}")
    if names:
        lines.extend(("", "**Recognised by name only** (no matching code: please check)"))
        lines.extend(f"- {n}" for n in names)
    return lines


def _by_name(record: PatientRecord, order: MedicationOrder) -> list[str]:
    found: list[str] = []
    if order.recognition is Recognition.NAME:
        found.append(f"the ordered drug ({order.drug.value})")
    for u in record.medication_uses:
        if u.recognition is Recognition.NAME:
            ref = f"{u.resource_type}/{u.resource_id}" if u.resource_id else u.resource_type
            found.append(f"medication {u.ingredient} ({ref})")
    for c in record.conditions:
        if c.recognition is Recognition.NAME and c.categories:
            ref = f"Condition/{c.resource_id}" if c.resource_id else "Condition"
            found.append(f"condition {c.label} ({ref}): read as {', '.join(sorted(c.categories))}")
    return list(dict.fromkeys(found))
