"""Feedback body validation: strict on the spec's invariants, lenient where real clients are."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.feedback.validation import FeedbackInvalid, parse_feedback, parse_rfc3339

OVERRIDE: dict[str, Any] = {
    "card": "0bf2c4a7-1e1b-4a53-9c4b-5d2c4f1c3a11",
    "outcome": "overridden",
    "overrideReason": {
        "reason": {"system": "urn:ketamine-cds:override-reason", "code": "benefit-outweighs-risk",
                   "display": "Benefit outweighs risk after specialist review"},
        "userComment": "Discussed with psychiatry",
    },
    "outcomeTimestamp": "2026-11-23T12:00:00Z",
}
ACCEPT: dict[str, Any] = {
    "card": "7c1b3c55-0d55-4f0e-8f0a-2a5c1b0d9e22",
    "outcome": "accepted",
    "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
    "outcomeTimestamp": "2026-11-23T12:01:00.52Z",
}


def body(*items: dict[str, Any]) -> dict[str, Any]:
    return {"feedback": [copy.deepcopy(i) for i in items]}


def problems(payload: Any) -> dict[str, str]:
    with pytest.raises(FeedbackInvalid) as info:
        parse_feedback(payload)
    return {p.location: p.message for p in info.value.problems}


def test_a_spec_example_override_and_accept_are_parsed() -> None:
    override, accept = parse_feedback(body(OVERRIDE, ACCEPT))
    assert override.card_uuid == OVERRIDE["card"]
    assert override.outcome == "overridden"
    assert override.outcome_timestamp == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert (override.reason_code, override.reason_display) == (
        "benefit-outweighs-risk", "Benefit outweighs risk after specialist review")
    assert override.user_comment == "Discussed with psychiatry"
    assert accept.accepted_suggestions == ("e56e1945-20b3-4393-8503-a1a20fd73152",)
    assert accept.outcome_timestamp.microsecond == 520000


def test_an_override_reason_with_a_code_but_no_display_is_accepted() -> None:
    # the CDS Hooks Sandbox echoes the chosen reason's code and system, without its display
    item = copy.deepcopy(OVERRIDE)
    item["overrideReason"] = {"reason": {"system": "urn:ketamine-cds:override-reason", "code": "documented-elsewhere"}}
    (entry,) = parse_feedback(body(item))
    assert (entry.reason_system, entry.reason_code, entry.reason_display) == (
        "urn:ketamine-cds:override-reason", "documented-elsewhere", None)


def test_an_override_reason_with_only_a_code_is_accepted() -> None:
    # the CDS Hooks Sandbox may send the chosen reason as {code} alone (openapi.yaml FeedbackReasonCoding)
    # (cds-hooks-spec.md section 5: "SBX sends overrideReason.reason with only code (and system if present)")
    item = copy.deepcopy(OVERRIDE)
    item["overrideReason"] = {"reason": {"code": "documented-elsewhere"}}
    (entry,) = parse_feedback(body(item))
    assert (entry.reason_system, entry.reason_code, entry.reason_display) == (None, "documented-elsewhere", None)


def test_a_code_only_reason_is_still_checked_for_everything_else() -> None:
    found = problems(body({**OVERRIDE, "overrideReason": {"reason": {"code": ""}}}))
    assert set(found) == {"feedback[0].overrideReason.reason.code"}


def test_an_override_without_any_reason_and_unknown_extensions_are_accepted() -> None:
    item = {k: v for k, v in OVERRIDE.items() if k != "overrideReason"}
    item["extension"] = {"org.example.ehr": {"x": 1}}
    (entry,) = parse_feedback(body(item))
    assert entry.reason_code is None and entry.user_comment is None


def test_a_comment_only_override_is_accepted() -> None:
    item = copy.deepcopy(OVERRIDE)
    item["overrideReason"] = {"userComment": "Patient already monitored"}
    (entry,) = parse_feedback(body(item))
    assert entry.reason_code is None
    assert entry.user_comment == "Patient already monitored"


@pytest.mark.parametrize(
    ("payload", "location", "words"),
    [
        ([], "(body)", "JSON object"),
        ({}, "feedback", "required"),
        ({"feedback": []}, "feedback", "at least 1"),
        ({"feedback": "x"}, "feedback", "type array"),
        (body({**OVERRIDE, "card": ""}), "feedback[0].card", "at least 1"),
        (body({k: v for k, v in OVERRIDE.items() if k != "card"}), "feedback[0].card", "required"),
        (body({**OVERRIDE, "outcome": "dismissed"}), "feedback[0].outcome", "accepted, overridden"),
        (body({k: v for k, v in OVERRIDE.items() if k != "outcomeTimestamp"}),
         "feedback[0].outcomeTimestamp", "required"),
        (body({**OVERRIDE, "outcomeTimestamp": "23/11/2026 12:00"}), "feedback[0].outcomeTimestamp", "RFC 3339"),
        (body({**OVERRIDE, "outcomeTimestamp": "2026-11-23T12:00:00"}), "feedback[0].outcomeTimestamp", "RFC 3339"),
        (body({k: v for k, v in ACCEPT.items() if k != "acceptedSuggestions"}),
         "feedback[0].acceptedSuggestions", "required"),
        (body({**ACCEPT, "acceptedSuggestions": [{}]}), "feedback[0].acceptedSuggestions[0].id", "required"),
        (body({**OVERRIDE, "overrideReason": {"reason": {"display": "no code"}}}),
         "feedback[0].overrideReason.reason.code", "required"),
        (body({**OVERRIDE, "overrideReason": {}}), "feedback[0].overrideReason", "at least 1"),
        (body(OVERRIDE, {**ACCEPT, "card": 7}), "feedback[1].card", "type string"),
    ],
)
def test_malformed_feedback_names_the_field(payload: Any, location: str, words: str) -> None:
    found = problems(payload)
    assert location in found, found
    assert words in found[location]


@pytest.mark.parametrize("stamp", ["2026-02-30T12:00:00Z", "0001-01-01T00:00:00+09:07", "9999-12-31T23:59:59-00:01"])
def test_an_impossible_date_is_rejected_after_the_schema(stamp: str) -> None:
    found = problems(body({**OVERRIDE, "outcomeTimestamp": stamp}))
    assert "RFC 3339" in found["feedback[0].outcomeTimestamp"]
    assert "UTC" in found["feedback[0].outcomeTimestamp"]


def test_messages_do_not_echo_the_body() -> None:
    found = problems(body({**OVERRIDE, "outcome": "secret-value-123"}))
    assert all("secret-value-123" not in m for m in found.values())


def test_every_problem_is_reported_not_only_the_first() -> None:
    found = problems(body({**OVERRIDE, "outcome": "x"}, {**ACCEPT, "card": ""}))
    assert {"feedback[0].outcome", "feedback[1].card"} <= set(found)


def test_a_timestamp_without_a_utc_instant_is_named_beside_the_schema_problems() -> None:
    found = problems(body({**ACCEPT, "card": ""}, {**OVERRIDE, "outcomeTimestamp": "0001-01-01T00:00:00+00:01"}))
    assert {"feedback[0].card", "feedback[1].outcomeTimestamp"} <= set(found)
    assert "feedback[0].outcomeTimestamp" not in found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1985-04-12T23:20:50.52Z", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("1996-12-19T16:39:57-08:00", datetime(1996, 12, 20, 0, 39, 57, tzinfo=UTC)),
        ("2026-11-23t12:00:00z", datetime(2026, 11, 23, 12, 0, tzinfo=UTC)),
        ("2026-11-23 12:00:00Z", datetime(2026, 11, 23, 12, 0, tzinfo=UTC)),
        ("2026-11-23T12:00:00", None),
        ("2026-11-23", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-11-23T12:00:00+24:00", None),
        # calendar edges: an offset may move the instant out of years 1-9999 (UTC has no value for it)
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00-00:01", datetime(1, 1, 1, 0, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00+00:01", None),
        ("0001-01-01T00:00:00+09:07", None),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("9999-12-31T23:59:59+00:01", datetime(9999, 12, 31, 23, 58, 59, tzinfo=UTC)),
        ("9999-12-31T23:59:59-00:01", None),
        # a leap second (RFC 3339 §5.6) is the second before it
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2016-12-31T23:59:61Z", None),
    ],
)
def test_rfc3339(text: str, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected
