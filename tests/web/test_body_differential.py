"""The hook-call edge that decodes the prefetch only when read answers exactly as the edge that parsed the
whole body did (``reference_edge.py``): same status, same cards, same OperationOutcome issues, on every
fixture request, on variants of them (encodings, layouts, duplicates, missing and odd prefetch members,
depth at and over the limit, other drugs), on malformed and hostile bodies. The four documented
differences (NaN/Infinity, lone surrogates, numbers beyond a double in a part read) have their own tests
at the end."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cds_service.hooks.pipeline import handle_hook_call
from cds_service.web.app import CLOCK_KEY, create_app
from tests.builders.requests import full_prefetch, hook_request, ketamine_order, other_order, settings
from tests.record.perturbed_requests import without_uuids
from tests.web.reference_edge import reference_call

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_REQUESTS = sorted((ROOT / "fhir_fixtures" / "requests").glob("*/*.json"))
# fixtures whose order gets no cards (another drug; a reason outside psychiatry and chronic pain)
NO_CARDS = {e["name"] for e in json.loads((ROOT / "fhir_fixtures" / "manifest.json").read_text())["patients"]
            if not e["expected"]}  # fmt: skip
NOW_ISO = "2026-11-23T12:00:00+00:00"
SERTRALINE = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437", "display": "sertraline"}
MALFORMED = "The request body is not valid JSON"


class Edges:
    """The service (the real Flask app) and the reference edge, on the same settings, knowledge and clock."""

    def __init__(self, kb: Any, max_depth: int) -> None:
        from datetime import datetime

        now = datetime.fromisoformat(NOW_ISO)
        self.kb, self.max_depth = kb, max_depth
        self.settings = settings(max_json_depth=max_depth)
        self.app: Flask = create_app(self.settings, kb=kb)
        self.app.extensions[CLOCK_KEY] = lambda: now
        self.client = self.app.test_client()
        self.now = now

    def new(self, service_id: str, raw: bytes) -> tuple[int, Any]:
        response = self.client.post(f"/cds-services/{service_id}", data=raw, content_type="application/json")
        return response.status_code, response.get_json()

    def old(self, service_id: str, raw: bytes) -> tuple[int, Any]:
        def pipeline(sid: str, body: Any) -> dict[str, Any]:
            return handle_hook_call(sid, body, kb=self.kb, settings=self.settings, now=self.now,
                                    base_url="https://cds.example.org")  # fmt: skip

        with self.app.test_request_context():  # the audit and the feedback store as in a request
            return reference_call(service_id, raw, kb=self.kb, max_depth=self.max_depth, pipeline=pipeline)

    def assert_same(self, service_id: str, raw: bytes) -> tuple[int, Any]:
        """Both edges answer alike; returns the answer."""
        old_status, old_json = self.old(service_id, raw)
        new_status, new_json = self.new(service_id, raw)
        assert new_status == old_status, (new_json, old_json)
        if old_status == 200:
            assert without_uuids(new_json) == without_uuids(old_json)
        else:
            assert _issues(new_json) == _issues(old_json)
        return new_status, new_json


@pytest.fixture(scope="module")
def edges(kb: Any) -> Edges:
    return Edges(kb, 64)


@pytest.fixture(scope="module")
def shallow(kb: Any) -> Edges:
    """A nesting limit of 20: a fixture request nests 12 levels at most."""
    return Edges(kb, 20)


def _issues(outcome: Any) -> list[tuple[Any, ...]]:
    """The issues of an OperationOutcome; the position in a malformed-JSON message is the decoder's own."""
    assert outcome["resourceType"] == "OperationOutcome"
    out = []
    for issue in outcome["issue"]:
        text = issue["diagnostics"]
        out.append((issue["code"], MALFORMED if text.startswith(MALFORMED) else text, issue.get("expression")))
    return out


def _service(body: Any) -> str:
    hook = body.get("hook") if isinstance(body, dict) else None
    return {"order-select": "ketamine-order-select", "patient-view": "ketamine-patient-view"}.get(
        str(hook), "ketamine-order-sign"
    )


def _fixture(name: str, hook: str = "order-sign") -> dict[str, Any]:
    body: dict[str, Any] = json.loads((ROOT / "fhir_fixtures" / "requests" / name / f"{hook}.json").read_text())
    return body


def _other_drug(body: dict[str, Any]) -> dict[str, Any]:
    for entry in body["context"]["draftOrders"]["entry"]:
        entry["resource"]["medicationCodeableConcept"] = {"coding": [dict(SERTRALINE)]}
    return body


NESTED = "@@nested@@"


def _nested_text(depth: int) -> str:
    """JSON text nesting ``depth`` levels of arrays and objects (built as text: ``json.dumps`` has a
    recursion limit), with brackets and quotes inside its strings."""
    opening = "".join('{"url": "x]\\"", "a": ' if i % 2 else "[" for i in range(depth))
    closing = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    return opening + '"]}[{"' + closing


# --------------------------------------------------------------------------- every fixture request


@pytest.mark.parametrize("path", FIXTURE_REQUESTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_fixture_request_gets_the_same_answer(edges: Edges, path: Path) -> None:
    raw = path.read_bytes()
    status, answer = edges.assert_same(_service(json.loads(raw)), raw)
    assert status == 200
    if path.stem != "patient-view":  # the chart opened: its cards depend on the (unrolled) dates, the summary does not
        assert bool(answer["cards"]) is (path.parent.name not in NO_CARDS)  # the whole pipeline ran


# --------------------------------------------------------------------------- variants

VARIANT_FIXTURES = ["bp-160-100", "eligible-mdd-iv", "mess-eligible-real-feed", "esketamine-ndc-coded"]


def _variants() -> Iterator[tuple[str, Callable[[dict[str, Any]], bytes]]]:
    def dumped(change: Callable[[dict[str, Any]], Any], **style: Any) -> Callable[[dict[str, Any]], bytes]:
        def make(body: dict[str, Any]) -> bytes:
            changed = change(body)
            return json.dumps(body if changed is None else changed, **style).encode()

        return make

    keep = lambda b: None  # noqa: E731
    yield "compact", dumped(keep, separators=(",", ":"))
    yield "indented, not ASCII-escaped", dumped(keep, indent=3, ensure_ascii=False)
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"):
        yield encoding, lambda b, e=encoding: json.dumps(b, ensure_ascii=False).encode(e)  # type: ignore[misc]
    yield "other drug", dumped(_other_drug)
    yield "no prefetch", dumped(lambda b: b.pop("prefetch"))
    yield "prefetch empty", dumped(lambda b: b.__setitem__("prefetch", {}))
    yield "prefetch null", dumped(lambda b: b.__setitem__("prefetch", None))
    yield "prefetch a list", dumped(lambda b: b.__setitem__("prefetch", [b["prefetch"]]))
    yield "prefetch a string", dumped(lambda b: b.__setitem__("prefetch", "{}"))
    yield "a required member null", dumped(lambda b: b["prefetch"].__setitem__("conditions", None))
    yield "a required member absent", dumped(lambda b: b["prefetch"].pop("medicationRequests"))
    yield "a member a list", dumped(lambda b: b["prefetch"].__setitem__("patient", [1, {"a": 2}]))
    yield "a member a number", dumped(lambda b: b["prefetch"].__setitem__("bloodPressure", 12.5))
    yield "a member a string", dumped(lambda b: b["prefetch"].__setitem__("bodyWeight", "Bundle"))
    yield "a member an OperationOutcome", dumped(
        lambda b: b["prefetch"].__setitem__("bloodPressure", {"resourceType": "OperationOutcome", "issue": []}))
    yield "a member not in the templates", dumped(lambda b: b["prefetch"].__setitem__("x-extra", {"a": [1]}))
    yield "an unknown top-level member", dumped(lambda b: b.__setitem__("zzUnknown", {"a": [[1]]}))
    yield "an extension", dumped(lambda b: b.__setitem__("extension", {"com.example": {"k": [1, 2]}}))
    yield "an extension that is a list", dumped(lambda b: b.__setitem__("extension", [1]))
    yield "integers beyond 64 bits", dumped(lambda b: b.__setitem__("extension", {"n": [2**64, -(2**70), 10**40]}))
    yield "hook of the other service", dumped(lambda b: b.__setitem__("hook", "order-select"))
    yield "no context", dumped(lambda b: b.pop("context"))
    yield "fhirAuthorization without fhirServer", dumped(lambda b: b.__setitem__("fhirAuthorization", {
        "access_token": "t", "token_type": "Bearer", "expires_in": 2**65, "scope": "s", "subject": "c"}))
    yield "not an object", dumped(lambda b: [b])
    yield "a string", dumped(lambda b: "order-sign")
    yield "null", dumped(lambda b: None)

    def duplicate(first: str, value: Any) -> Callable[[dict[str, Any]], bytes]:
        def make(body: dict[str, Any]) -> bytes:  # the first of two same-named members; the last one wins
            text = json.dumps(body)
            return ("{" + json.dumps(first) + ": " + json.dumps(value) + ", " + text[1:]).encode()

        return make

    yield "duplicate prefetch, first a list", duplicate("prefetch", [1])
    yield "duplicate prefetch, first an object", duplicate("prefetch", {"patient": None})
    yield "duplicate hook", duplicate("hook", "order-select")
    yield "duplicate context", duplicate("context", 7)

    def duplicate_member(body: dict[str, Any]) -> bytes:
        text = json.dumps(body)
        return text.replace('"prefetch": {', '"prefetch": {"patient": [1], ', 1).encode()

    yield "duplicate prefetch member", duplicate_member


@pytest.mark.parametrize("fixture", VARIANT_FIXTURES)
@pytest.mark.parametrize(("name", "make"), list(_variants()), ids=[n for n, _ in _variants()])
def test_variants_get_the_same_answer(edges: Edges, fixture: str, name: str, make: Any) -> None:
    body = _fixture(fixture)
    edges.assert_same("ketamine-order-sign", make(body))


@pytest.mark.parametrize("fixture", VARIANT_FIXTURES[:2])
def test_order_select_gets_the_same_answer_selected_or_not(edges: Edges, fixture: str) -> None:
    body = _fixture(fixture, "order-select")
    edges.assert_same("ketamine-order-select", json.dumps(body).encode())
    entries = body["context"]["draftOrders"]["entry"]
    entries.append({"resource": other_order("other-1")})
    body["context"]["selections"] = ["MedicationRequest/other-1"]  # the ketamine order is not selected
    status, answer = edges.assert_same("ketamine-order-select", json.dumps(body).encode())
    assert (status, answer) == (200, {"cards": []})


# --------------------------------------------------------------------------- nesting depth


@pytest.mark.parametrize("drug", ["ketamine", "other"])
@pytest.mark.parametrize("where", ["prefetch member", "prefetch member not read", "envelope", "unknown member"])
@pytest.mark.parametrize("extra", [0, 1, 300, 3000])  # at the limit, one over, far over, past the parser's guard
def test_nesting_at_and_over_the_limit_gets_the_same_answer(shallow: Edges, drug: str, where: str,
                                                            extra: int) -> None:  # fmt: skip
    orders = [ketamine_order()] if drug == "ketamine" else [other_order()]
    body = hook_request(orders=orders, prefetch=full_prefetch())
    limit = shallow.max_depth
    if where == "prefetch member":  # body 1, prefetch 2, patient 3, its extension list 4
        body["prefetch"]["patient"]["extension"] = [NESTED]
        depth = limit - 4 + extra
    elif where == "prefetch member not read":  # body 1, prefetch 2
        body["prefetch"]["x-not-read"] = NESTED
        depth = limit - 2 + extra
    elif where == "envelope":  # body 1, context 2, draftOrders 3, entry list 4
        body["context"]["draftOrders"]["entry"].append(NESTED)
        depth = limit - 4 + extra
    else:  # body 1
        body["zzUnknown"] = NESTED
        depth = limit - 1 + extra
    raw = json.dumps(body).replace(json.dumps(NESTED), _nested_text(depth)).encode()
    status, _ = shallow.assert_same("ketamine-order-sign", raw)
    if extra == 0:
        assert status in (200, 400)  # at the limit: the envelope entry may fail the schema, never the depth
    elif drug == "ketamine" or where in ("envelope", "unknown member") or extra == 3000:
        assert status == 400


# --------------------------------------------------------------------------- malformed and hostile


def _small_bodies() -> list[bytes]:
    ketamine = hook_request(prefetch=full_prefetch())
    ketamine["prefetch"]["patient"]["name"] = [{"text": "Zoë \"Q\" [test] {x} \\ é € 😀"}]
    other = hook_request(orders=[other_order()], prefetch=full_prefetch())
    other["prefetch"]["conditions"]["entry"] = [{"resource": {"resourceType": "Condition", "note": [{"text": "\\]"}]}}]
    return [json.dumps(b, ensure_ascii=ascii).encode() for b in (ketamine, other) for ascii in (True, False)]


HOSTILE = [
    b"{", b"}", b"[", b"]", b'{"hook"', b'{"hook": }', b'{,}', b'{"a": 1,}', b"[1,]", b"tru", b"nul", b"01",
    b'"\\x"', b'"\x01"', b'"\xff"', b"\xef\xbb\xbf", b"\xff\xfe", b"\x00\x00\x00", b"{}" * 2, b"{} x",
    b'{"prefetch": {"patient": {"a": "\xc0\xaf"}}}', b'{"prefetch": {"patient": {"a": 1.}}}',
    b'{"prefetch": {"patient": {"a": .5}}}', b'{"prefetch": {"patient": {"a": -}}}',
    b'{"prefetch": {"patient": {"a": "\t"}}}', b'{"prefetch": {"patient": {"a": "\\u12"}}}',
    b'{"prefetch": {"patient": {"a": 1e}}}', b'{"prefetch": {"patient": {\'a\': 1}}}',
    b'{"prefetch": {"patient": {"a": 1} "b": 2}}', b'{"prefetch": {"patient": {"a": 1}}', b"[" * 5000,
    b"[" * 5000 + b"]" * 5000, b'{"prefetch": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"{\x0c}", b" \n\t{}\r\n",
    b'{"hook": "order-sign", "\\u0068ook": "order-select"}', b'{"prefetch": {"\\u0000": null}}',
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_bodies_get_the_same_answer(edges: Edges, raw: bytes) -> None:
    status, _ = edges.assert_same("ketamine-order-sign", raw)
    assert status == 400


@pytest.mark.parametrize("body", range(4))
@pytest.mark.parametrize("cut", [0.05, 0.3, 0.5, 0.7, 0.9, 0.999])
def test_truncated_bodies_get_the_same_answer(edges: Edges, body: int, cut: float) -> None:
    raw = _small_bodies()[body]
    status, _ = edges.assert_same("ketamine-order-sign", raw[: int(len(raw) * cut)])
    assert status == 400


def _old_value_documented(raw: bytes) -> bool:
    """The old edge read a value that the new one documents as refused: NaN/Infinity, a lone surrogate."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, str) and any("\ud800" <= c <= "\udfff" for c in item):
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@hyp_settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 3),
    st.lists(
        st.tuples(
            st.floats(0, 1, exclude_max=True),
            st.sampled_from(["delete", "insert", "replace"]),
            st.sampled_from(list(b'{}[]",:\\ 0-.eE+tfnua\x00\x1f\x7f\x80\xc3\xed\xff')),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_bodies_get_the_same_answer(edges: Edges, body: int, mutations: list[Any]) -> None:
    raw = bytearray(_small_bodies()[body])
    for where, action, byte in mutations:
        at = int(where * len(raw))
        if action == "delete":
            del raw[at]
        elif action == "insert":
            raw.insert(at, byte)
        else:
            raw[at] = byte
    assume(not _old_value_documented(bytes(raw)))
    edges.assert_same("ketamine-order-sign", bytes(raw))


# --------------------------------------------------------------------------- the documented differences


def _with_text(body: dict[str, Any], where: str, literal: str) -> bytes:
    """``body`` as JSON with the JSON text ``literal`` at ``where`` (a marker replaced after dumping)."""
    marker = "@@marker@@"
    if where == "envelope":
        body["extension"] = {"value": marker}
    else:
        body["prefetch"]["patient"]["extension"] = [{"url": "x", "valueDecimal": marker}]
    return json.dumps(body).replace(json.dumps(marker), literal).encode()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["envelope", "prefetch"])
@pytest.mark.parametrize("order", ["ketamine", "other"])
def test_nan_and_infinity_are_malformed_json_anywhere(edges: Edges, literal: str, where: str, order: str) -> None:
    orders = [ketamine_order()] if order == "ketamine" else [other_order()]
    raw = _with_text(hook_request(orders=orders, prefetch=full_prefetch()), where, literal)
    status, outcome = edges.new("ketamine-order-sign", raw)
    assert status == 400
    assert outcome["issue"][0]["diagnostics"].startswith(MALFORMED)
    assert edges.old("ketamine-order-sign", raw)[0] != 400  # the old edge read them as floats


@pytest.mark.parametrize(("text", "message"), [
    (b'"\\ud800"', MALFORMED), (b'"a\\udc00b"', MALFORMED), (b'"\\udc00\\ud800"', MALFORMED),
    (b'"\xed\xa0\x80"', "The request body is not UTF-8 text"),
])  # fmt: skip
@pytest.mark.parametrize("where", ["envelope", "prefetch"])
@pytest.mark.parametrize("order", ["ketamine", "other"])
def test_lone_surrogates_are_refused_anywhere(edges: Edges, text: bytes, message: str, where: str,
                                              order: str) -> None:  # fmt: skip
    orders = [ketamine_order()] if order == "ketamine" else [other_order()]
    raw = _with_text(hook_request(orders=orders, prefetch=full_prefetch()), where, "@@lit@@")
    raw = raw.replace(b"@@lit@@", text)
    status, outcome = edges.new("ketamine-order-sign", raw)
    assert status == 400
    assert outcome["issue"][0]["diagnostics"].startswith(message)


def test_a_surrogate_pair_is_one_character_and_accepted(edges: Edges) -> None:
    raw = _with_text(hook_request(prefetch=full_prefetch()), "prefetch", '"\\ud83d\\ude00"')
    status, _ = edges.assert_same("ketamine-order-sign", raw)
    assert status == 200


@pytest.mark.parametrize(("where", "order", "status", "expression"), [
    ("envelope", "ketamine", 400, "extension"),
    ("envelope", "other", 400, "extension"),
    ("prefetch", "ketamine", 400, "prefetch.patient"),
    ("prefetch", "other", 200, None),  # the prefetch of another drug's order is not read
])  # fmt: skip
def test_a_number_beyond_a_double_is_refused_where_it_is_read(edges: Edges, where: str, order: str, status: int,
                                                              expression: str | None) -> None:  # fmt: skip
    orders = [ketamine_order()] if order == "ketamine" else [other_order()]
    raw = _with_text(hook_request(orders=orders, prefetch=full_prefetch()), where, "1e400")
    got, answer = edges.new("ketamine-order-sign", raw)
    assert got == status
    if status == 400:
        (issue,) = answer["issue"]
        assert issue["code"] == "value" and issue["expression"] == [expression]
        assert "beyond the range of a 64-bit float" in issue["diagnostics"]
    near_limit = _with_text(hook_request(orders=orders, prefetch=full_prefetch()), where, "1.7976931348623157e308")
    edges.assert_same("ketamine-order-sign", near_limit)  # the largest double: read as before


@pytest.mark.parametrize("value", [2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63) - 1, 10**40])
def test_integers_beyond_64_bits_are_read_exactly(edges: Edges, value: int) -> None:
    body = hook_request(prefetch=full_prefetch(), fhir_server="https://fhir.example.org/r4", token="t")
    body["fhirAuthorization"]["expires_in"] = value  # schema: an integer >= 0
    status, _ = edges.assert_same("ketamine-order-sign", json.dumps(body).encode())
    assert status == (200 if value >= 0 else 400)


def test_duplicate_members_the_last_one_wins(edges: Edges) -> None:
    body = json.dumps(hook_request(orders=[other_order()], prefetch=full_prefetch()))
    raw = ('{"hook": "order-select", "prefetch": [], ' + body[1:]).encode()
    assert edges.assert_same("ketamine-order-sign", raw) == (200, {"cards": []})
    raw = (body[:-1] + ', "hook": "order-select"}').encode()
    status, outcome = edges.assert_same("ketamine-order-sign", raw)
    assert status == 400 and outcome["issue"][0]["expression"] == ["hook"]
