"""Findings → CDS Hooks cards. The only place card JSON is made.

Texts come from the knowledge base (``kb.topics[topic].variants[variant]``) filled with the finding's
facts; every card goes through the validated model in ``cards.model``. ``source.label`` names the topic's
published references; ``source.url`` is the rule's section of ``/docs/rules``, which lists them in full. Card
text never carries FHIR ids: the records a finding rests on are listed, with their ids, in the card extension
``org.ketamine-cds.evidence`` for audit. Summaries are composed to fit (the knowledge base's texts and the rules'
facts are written for it); a summary that still does not fit is a defect, logged, and shortened at a word.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping
from typing import Any

from cds_service.cards.model import SUMMARY_MAX, Action, Card, CardModelError, Coding, Source, Suggestion
from cds_service.knowledge.model import Knowledge, Topic
from cds_service.order.rewrite import rewrite_to_standard
from cds_service.rules.engine import Evaluation
from cds_service.rules.findings import CreateAssessment, DeleteOrder, Finding, Indicator, RewriteDose

log = logging.getLogger(__name__)

TOPIC_SYSTEM = "urn:ketamine-cds:rule"
OVERRIDE_SYSTEM = "urn:ketamine-cds:override-reason"
# Used only when a topic lists no override reasons of its own (the loader normally fills the defaults in).
DEFAULT_OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("benefit-outweighs-risk", "Benefit outweighs risk after specialist review"),
    ("documented-elsewhere", "Criteria documented outside this record"),
    ("resolved-or-outdated", "Contraindication resolved or data out of date"),
)
EVIDENCE_EXTENSION = "org.ketamine-cds.evidence"
_MISSING_FACT = "(not recorded)"


class _Facts(dict[str, str]):
    """Facts for ``str.format_map``: an unknown placeholder reads "(not recorded)" instead of raising."""

    def __missing__(self, key: str) -> str:
        log.warning("card text placeholder {%s} has no fact", key)
        return _MISSING_FACT


def render_cards(
    evaluation: Evaluation,
    order_resource: Mapping[str, Any] | None,
    order_reference: str | None,
    kb: Knowledge,
    *,
    base_url: str,
    patient_id: str,
) -> list[dict[str, Any]]:
    """One card per finding, in the evaluation's order (summary first), as CDS Hooks JSON."""
    return [
        card.to_json()
        for card in build_cards(
            evaluation, order_resource, order_reference, kb, base_url=base_url, patient_id=patient_id
        )
    ]


def build_cards(
    evaluation: Evaluation,
    order_resource: Mapping[str, Any] | None,
    order_reference: str | None,
    kb: Knowledge,
    *,
    base_url: str,
    patient_id: str,
) -> list[Card]:
    """One card per finding, in the evaluation's order. ``order_resource``: the draft order the suggestions act
    on (None when what was evaluated is the patient: no order to remove or rewrite)."""
    return [
        _card(f, order_resource, order_reference, kb, base_url=base_url.rstrip("/"), patient_id=patient_id)
        for f in evaluation.findings
    ]


def _card(
    finding: Finding,
    order_resource: Mapping[str, Any] | None,
    order_reference: str | None,
    kb: Knowledge,
    *,
    base_url: str,
    patient_id: str,
) -> Card:
    topic = kb.topics.get(finding.topic)
    facts = _Facts({k: str(v) for k, v in finding.facts.items()})
    if topic is None:
        # a rule emitted a topic the knowledge base has no text for: still say something, and log it
        log.error("no card text for topic %s", finding.topic)
        title, label, rationale_t = finding.topic, "ketamine-cds", ""
        summary_t = finding.topic.replace("-", " ").capitalize()
    else:
        text = topic.variants.get(finding.variant) or topic.variants.get("default")
        if text is None:
            log.error("no card text for topic %s variant %s", finding.topic, finding.variant)
        title, label = topic.title, topic.source_label
        summary_t = text.summary if text else topic.title
        rationale_t = text.rationale if text else ""
    summary = _fit_summary(_format(summary_t, facts), finding.topic)
    detail = _detail(_format(rationale_t, facts), finding)
    indicator = finding.indicator.value
    return Card(
        extension=_audit(finding),
        summary=summary,
        detail=detail or None,
        indicator=indicator,
        source=Source(
            label=label or "ketamine-cds",
            url=f"{base_url}/docs/rules#{finding.topic}",
            topic=_topic_coding(finding.topic, title or None),
        ),
        override_reasons=_override_reasons(topic, finding.indicator),
        **_suggestions(finding, order_resource, order_reference, kb, patient_id),
    )


def _format(template: str, facts: _Facts) -> str:
    try:
        return template.format_map(facts)
    except (ValueError, IndexError, AttributeError, KeyError):
        log.error("card text template is malformed")
        return template


def _fit_summary(summary: str, topic: str) -> str:
    """The composed summary; a defect guard only: tests prove every topic × variant × realistic facts fits."""
    summary = " ".join(summary.split())
    if len(summary) > SUMMARY_MAX:
        log.error("card summary of topic %s over %d characters was shortened", topic, SUMMARY_MAX)
        cut = summary[: SUMMARY_MAX - 1].rsplit(" ", 1)[0]
        if cut.count("(") > cut.count(")"):
            cut = cut[: cut.rfind("(")]
        summary = cut.rstrip(" ,;:(") + "…"
    return summary


def _audit(finding: Finding) -> dict[str, Any] | None:
    """The records behind the finding, with their FHIR ids, for audit (never card text)."""
    records = [
        {"reference": ref, "date": e.when.date().isoformat() if e.when else None}
        for e in dict.fromkeys((*finding.evidence, *finding.audit))
        if (ref := e.reference()) is not None
    ]
    unique = list({r["reference"]: r for r in records}.values())
    return {EVIDENCE_EXTENSION: [{k: v for k, v in r.items() if v} for r in unique]} if unique else None


def _detail(rationale: str, finding: Finding) -> str:
    parts: list[str] = []
    if rationale.strip():
        parts.append(rationale.strip())
    if finding.detail:
        parts.append("\n".join(finding.detail))
    if finding.evidence:
        parts.append("**Evidence**\n\n" + "\n".join(f"- {e.describe()}" for e in finding.evidence))
    return "\n\n".join(parts)


def _override_reasons(topic: Topic | None, indicator: Indicator) -> tuple[Coding, ...]:
    if indicator not in (Indicator.WARNING, Indicator.CRITICAL):
        return ()
    reasons = (topic.override_reasons if topic else ()) or DEFAULT_OVERRIDE_REASONS
    return _reason_codings(tuple(map(tuple, reasons)))  # hashable, whatever sequences a Topic was given


# Codings are immutable and depend only on knowledge-base texts: built (and checked) once, not per card.
# The caches are bounded; their keys are topic codes and override reasons of the knowledge base.
@functools.lru_cache(maxsize=512)
def _topic_coding(code: str, title: str | None) -> Coding:
    return Coding(TOPIC_SYSTEM, code, title)


@functools.lru_cache(maxsize=256)
def _reason_codings(reasons: tuple[tuple[str, str], ...]) -> tuple[Coding, ...]:
    return tuple(Coding(OVERRIDE_SYSTEM, code, display) for code, display in reasons)


def _suggestions(
    finding: Finding,
    order_resource: Mapping[str, Any] | None,
    order_reference: str | None,
    kb: Knowledge,
    patient_id: str,
) -> dict[str, Any]:
    built: list[Suggestion] = []
    for intent in finding.suggestions:
        try:
            suggestion = _suggestion(intent, order_resource, order_reference, kb, patient_id)
        except CardModelError as exc:
            log.error("suggestion for topic %s dropped: %s", finding.topic, exc)
            continue
        except Exception as exc:  # e.g. the order rewrite failed: the card stands without the suggestion
            log.error("suggestion for topic %s dropped: %s", finding.topic, type(exc).__name__)
            continue
        if suggestion is not None:
            built.append(suggestion)
    if not built:
        return {}
    # Independent orders (one per missing item) may all be accepted; alternatives (remove or rewrite) at most one.
    independent = len(built) > 1 and all(isinstance(i, CreateAssessment) for i in finding.suggestions)
    return {"suggestions": tuple(built), "selection_behavior": "any" if independent else "at-most-one"}


def _suggestion(
    intent: object,
    order_resource: Mapping[str, Any] | None,
    order_reference: str | None,
    kb: Knowledge,
    patient_id: str,
) -> Suggestion | None:
    if isinstance(intent, DeleteOrder | RewriteDose) and order_resource is None:
        log.error("suggestion %s needs a draft order, and there is none", type(intent).__name__)
        return None
    if isinstance(intent, DeleteOrder) and order_resource is not None:
        reference = order_reference or _reference_of(order_resource)
        if reference is None:
            return None  # a draft without an id cannot be addressed by a delete action
        return Suggestion(
            label="Remove this draft order",
            actions=(Action("delete", "Remove the draft ketamine/esketamine order", resource_id=reference),),
        )
    if isinstance(intent, CreateAssessment):
        template = kb.assessment_orders.get(intent.kind)
        if template is None:
            log.error("no assessment order template %s", intent.kind)
            return None
        resource = copy.deepcopy(dict(template))
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
        label = kb.assessment_labels.get(intent.kind) or f"Order {_code_text(resource) or intent.kind}"
        return Suggestion(label=label, actions=(Action("create", label, resource),))
    if isinstance(intent, RewriteDose) and order_resource is not None:
        rewritten = rewrite_to_standard(order_resource, intent.dose_mg, intent.duration_minutes, intent.per_week)
        label = f"Change to {intent.dose_mg:g} mg over {intent.duration_minutes:g} minutes"
        if intent.per_week is not None:
            label += f", {'twice' if intent.per_week == 2 else f'{intent.per_week} times'} a week"
        return Suggestion(label=label, actions=(Action("update", label, rewritten),))
    log.error("unknown suggestion intent %s", type(intent).__name__)
    return None


def _reference_of(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    rtype = resource.get("resourceType") or "MedicationRequest"
    return f"{rtype}/{rid}" if isinstance(rid, str) and rid else None


def _code_text(resource: Mapping[str, Any]) -> str | None:
    code = resource.get("code")
    if not isinstance(code, Mapping):
        return None
    if isinstance(code.get("text"), str) and code["text"]:
        text: str = code["text"]
        return text
    for coding in code.get("coding") or ():
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            display: str = coding["display"]
            return display
    return None
