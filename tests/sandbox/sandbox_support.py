"""Shared pieces of the sandbox tests: the fixed clock, a FHIR mock over a fixture, and card comparison."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import responses

from cds_service.fhir.memory import MemoryServer

FHIR_BASE = "https://fhir.sandbox.test/r4"


def frozen_datetime(instant: datetime) -> type[datetime]:
    """A ``datetime`` class whose ``now()`` is ``instant`` (to pin a module that reads the wall clock)."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:  # type: ignore[override]
            return instant if tz is None else instant.astimezone(tz)  # type: ignore[return-value]

    return Frozen


@contextmanager
def fhir_mock(server: MemoryServer) -> Iterator[responses.RequestsMock]:
    """Answer every GET under ``server.base_url`` from the fixture; reads of nothing get a 404."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        result = server.query(request.url)
        headers = {"Content-Type": "application/fhir+json"}
        if result.body is None:
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
            return 404, headers, json.dumps(outcome)
        return 200, headers, json.dumps(result.body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.GET, re.compile(re.escape(server.base_url) + r"(/.*)?(\?.*)?$"), callback=answer)
        yield rsps


def card_pairs(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(((c.get("source") or {}).get("topic") or {}).get("code")), str(c.get("indicator")))
        for c in response.get("cards") or ()
    ]


def card_mismatch(actual: Sequence[tuple[str, str]], expected: Sequence[tuple[str, str]]) -> str | None:
    """None when the cards match (same multiset, eligibility-summary first), else what differs."""
    problems = []
    if expected and list(actual[:1]) != list(expected[:1]):
        problems.append(f"first card {list(actual[:1])} should be {list(expected[:1])}")
    missing = Counter(expected) - Counter(actual)
    extra = Counter(actual) - Counter(expected)
    if missing:
        problems.append(f"missing {sorted(missing.elements())}")
    if extra:
        problems.append(f"unexpected {sorted(extra.elements())}")
    return "; ".join(problems) or None


def _actions(card: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [a for s in card.get("suggestions") or () for a in s.get("actions") or ()]


def card_contract_problems(card: Mapping[str, Any], draft_ref: str, weight_kg: float | None) -> list[str]:
    """What a card breaks of clinical-rules.md §9 (every card) and the suggestions of §1 and §4."""
    topic = ((card.get("source") or {}).get("topic") or {})
    code, indicator = str(topic.get("code")), card.get("indicator")
    problems = []
    if topic.get("system") != "urn:ketamine-cds:rule":
        problems.append("source.topic system is not urn:ketamine-cds:rule")
    if not card.get("summary") or len(str(card["summary"])) > 140:
        problems.append("summary missing or longer than 140 characters")
    if not card.get("detail") or not (card.get("source") or {}).get("label"):
        problems.append("no detail or no source.label")
    if not str((card.get("source") or {}).get("url", "")).endswith(f"/docs/rules#{code}"):
        problems.append("source.url is not the rule documentation anchor")
    if indicator in ("critical", "warning") and not all(r.get("display") for r in card.get("overrideReasons") or [{}]):
        problems.append("critical/warning card without overrideReasons (each with a display)")
    actions = _actions(card)
    if indicator == "critical" and not any(a.get("type") == "delete" and a.get("resourceId") == draft_ref
                                           for a in actions):
        problems.append(f"critical card without a delete action on {draft_ref}")
    if code == "depression-severity-undocumented" and not any(a.get("type") == "create" for a in actions):
        problems.append("no create action for a PHQ-9")
    if code == "dose-standard-suggestion":
        updates = [a.get("resource") or {} for a in actions if a.get("type") == "update"]
        if not updates or weight_kg is None:
            return [*problems, "no update action rewriting the draft order"]
        dosage = (updates[0].get("dosageInstruction") or [{}])[0]
        rate = (dosage.get("doseAndRate") or [{}])[0]
        dose = (rate.get("doseQuantity") or {}).get("value")
        repeat = (dosage.get("timing") or {}).get("repeat") or {}
        if dose != round(0.5 * weight_kg) or (repeat.get("duration"), repeat.get("durationUnit")) != (40, "min"):
            problems.append(f"update is {dose} mg over {repeat.get('duration')} {repeat.get('durationUnit')}, "
                            f"not {round(0.5 * weight_kg)} mg over 40 min")
        per_hour = (rate.get("rateQuantity") or {}).get("value")
        if per_hour and dose and abs(dose / per_hour * 60 - 40) > 0.5:
            problems.append("update keeps a rate that does not give 40 minutes")
        if updates[0].get("id") != draft_ref.split("/")[-1]:
            problems.append("update does not rewrite the draft order itself")
    return problems
