"""Nesting-depth limit: the raw-bytes check of the prefetch agrees with a walk of the parsed JSON, and the
service answers 400 naming the limit only on the ketamine path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cds_service.hooks.errors import HookError
from cds_service.hooks.limits import nesting_exceeds, raw_nesting_exceeds
from cds_service.hooks.pipeline import handle_hook_call
from cds_service.web.app import create_app
from tests.builders.requests import full_prefetch, hook_request, other_order, settings
from tests.clock import NOW

SIGN = "/cds-services/ketamine-order-sign"
# Characters that could fool a byte-level scan: brackets, quotes, backslashes, escapes, non-ASCII
TRICKY = st.text(alphabet=st.sampled_from(list('{}[]"\\/:,a \n\t\u00e9\u20ac\U0001f600\x00\x1f')), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TRICKY
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=40,
)
STYLES = st.sampled_from([
    {},
    {"ensure_ascii": False},
    {"separators": (",", ":")},
    {"indent": 1, "ensure_ascii": False},
])


def depth(value: Any) -> int:
    """Reference: the nesting depth by recursion (the value itself is level 1, scalars are 0)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@hyp_settings(max_examples=400, deadline=None)
@given(JSON, STYLES, st.integers(min_value=0, max_value=12))
def test_raw_check_agrees_with_the_walk_of_the_parsed_value(value: Any, style: dict[str, Any], limit: int) -> None:
    raw = json.dumps(value, **style).encode()
    assert raw_nesting_exceeds(raw, limit) == nesting_exceeds(value, limit)


@hyp_settings(max_examples=200, deadline=None)
@given(JSON, STYLES)
def test_raw_check_changes_its_answer_exactly_at_the_depth(value: Any, style: dict[str, Any]) -> None:
    raw = json.dumps(value, **style).encode()
    d = depth(value)
    assert not raw_nesting_exceeds(raw, d)
    assert raw_nesting_exceeds(raw, d - 1) == (d > 0)


@pytest.mark.parametrize(
    ("raw", "limit", "exceeds"),
    [
        (b"[[]]", 2, False),
        (b"[[]]", 1, True),
        (b'[{"a": []}]', 3, False),
        (b'[{"a": []}]', 2, True),
        (b'{"k": "[[[[ \\" {{{{ \\\\"}', 1, False),  # escaped quote, then an escaped backslash before the end
        (b'{"k": "\\\\", "m": [["\\"]"]]}', 3, False),
        (b'{"k": "\\\\", "m": [["\\"]"]]}', 2, True),
        (b'["", "", {"": ""}]', 2, False),
        (b'["", "", {"": ""}]', 1, True),
        (b'"[[[["', 0, False),
        (b"42", 0, False),
        (b"[]", 0, True),
    ],
)
def test_raw_check_examples(raw: bytes, limit: int, exceeds: bool) -> None:
    json.loads(raw)  # every example is valid JSON
    assert raw_nesting_exceeds(raw, limit) is exceeds


def _deep_prefetch(total_depth: int) -> dict[str, Any]:
    """A full prefetch whose request body nests exactly ``total_depth`` levels (extension of the patient)."""
    prefetch = full_prefetch()
    body_depth = depth(hook_request(prefetch=prefetch))
    base = depth({"prefetch": {"patient": {"extension": [None]}}})  # body, prefetch, patient, extension list
    assert total_depth > max(base, body_depth)
    nested: Any = '"]}[{\\'  # a string full of brackets and quotes counts for nothing
    for _ in range(total_depth - base):
        nested = {"url": "x]\"[", "a": nested}
    prefetch["patient"] = {**prefetch["patient"], "extension": [nested]}
    assert depth(hook_request(prefetch=prefetch)) == total_depth
    return prefetch


@pytest.mark.parametrize("utf16", [False, True])
def test_ketamine_call_with_prefetch_one_level_too_deep_is_400_naming_the_limit(kb: Any, utf16: bool) -> None:
    client = create_app(settings(max_json_depth=20), kb=kb).test_client()

    def post(prefetch: dict[str, Any]) -> Any:
        text = json.dumps(hook_request(prefetch=prefetch))
        raw = text.encode("utf-16") if utf16 else text.encode()  # json.loads accepts UTF-16 too
        return client.post(SIGN, data=raw, content_type="application/json")

    at_limit = post(_deep_prefetch(20))
    assert at_limit.status_code == 200, at_limit.get_data(as_text=True)
    too_deep = post(_deep_prefetch(21))
    assert too_deep.status_code == 400
    outcome = too_deep.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["diagnostics"] == "JSON nesting depth exceeds the limit of 20 levels"
    assert issue["expression"] == ["prefetch"]


def test_other_drug_never_pays_for_the_prefetch_check(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_service.hooks import body as body_module

    def refuse(raw: bytes, max_depth: int) -> bool:
        raise AssertionError("the prefetch was checked for another drug's order")

    monkeypatch.setattr(body_module, "raw_nesting_exceeds", refuse)
    client = create_app(settings(max_json_depth=20), kb=kb).test_client()
    body = hook_request(orders=[other_order()], prefetch=_deep_prefetch(30))
    response = client.post(SIGN, data=json.dumps(body), content_type="application/json")
    assert response.get_json() == {"cards": []}


def test_pipeline_without_raw_bytes_checks_the_prefetch_too(kb: Any) -> None:
    """The sandbox calls the pipeline with a parsed body only."""
    s = settings(max_json_depth=20)
    call = {"kb": kb, "settings": s, "now": NOW, "base_url": "http://cds.test"}
    with pytest.raises(HookError) as err:
        handle_hook_call("ketamine-order-sign", hook_request(prefetch=_deep_prefetch(21)), **call)
    assert err.value.status == 400
    assert "limit of 20" in err.value.issues[0].diagnostics
    assert "cards" in handle_hook_call("ketamine-order-sign", hook_request(prefetch=_deep_prefetch(20)), **call)


# JSON string literals (as they appear in the request bytes) that a byte-level scan could mistake for
# structure: brackets in units and text, escaped quotes and backslashes in runs of every parity, escapes
# of brackets, and a backslash-free string for comparison.
STRING_LITERALS = [
    r'"plain"',
    r'"mm[Hg]"',
    r'"{score}"',
    r'"]]]}}}"',
    r'"[[[{{{"',
    r'"\\"',
    r'"\\\\"',
    r'"\""',
    r'"\\\""',
    r'"\\\\\"]"',
    r'"a\\\"[\\"',
    r'"\"[\"{"',
    r'"\u005B\u005b\u007B\u005D"',
    r'"\/[\/]\n\t\r\b\f"',
    r'"\\u005B["',
    r'"é[😀]\u00e9"',
    r'""',
]


def _nested_text(levels: int, literal: str) -> bytes:
    """JSON text nesting exactly ``levels`` objects/arrays, with ``literal`` as every key and value."""
    text = literal
    for i in range(levels):
        if i % 2:
            text = f"[{literal}, {text}, {literal}, []]" if levels > 1 else f"[{text}]"
        else:
            text = f'{{{literal}: {text}, "k": {literal}}}'
    return text.encode()


@pytest.mark.parametrize("literal", STRING_LITERALS)
@pytest.mark.parametrize("levels", [1, 2, 3, 7, 20])
def test_raw_check_boundary_with_tricky_strings(literal: str, levels: int) -> None:
    raw = _nested_text(levels, literal)
    assert depth(json.loads(raw)) == levels  # valid JSON of exactly that depth
    assert raw_nesting_exceeds(raw, levels) is False
    assert raw_nesting_exceeds(raw, levels - 1) is True


@pytest.mark.parametrize("literal", STRING_LITERALS)
def test_raw_check_boundary_at_the_service_limit(literal: str) -> None:
    limit = 64
    assert raw_nesting_exceeds(_nested_text(limit, literal), limit) is False
    assert raw_nesting_exceeds(_nested_text(limit + 1, literal), limit) is True
