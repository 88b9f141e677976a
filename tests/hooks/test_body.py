"""``hooks.body``: the envelope is decoded at once, the prefetch's members only when read and only those the
templates name; the schema sees each object member as ``{}``; errors name where the body is malformed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cds_service.hooks import body as body_module
from cds_service.hooks.body import HookBody, decode_hook_body
from cds_service.hooks.errors import HookError
from cds_service.web.app import create_app
from tests.builders.requests import full_prefetch, hook_request, other_order, settings

SIGN = "/cds-services/ketamine-order-sign"
DEPTH = 64


def _raw(body: Any, **style: Any) -> bytes:
    return json.dumps(body, **style).encode()


def test_the_envelope_is_every_member_but_the_prefetch() -> None:
    body = hook_request(prefetch=full_prefetch(), fhir_server="https://fhir.example.org/r4", token="t")
    body["extension"] = {"x": [1]}
    decoded = decode_hook_body(_raw(body), DEPTH)
    assert decoded.envelope == {k: v for k, v in body.items() if k != "prefetch"}
    assert decoded.from_json


def test_an_unknown_member_is_part_of_the_envelope() -> None:
    body = hook_request(prefetch=full_prefetch())
    body["zzUnknown"] = {"a": [None]}
    decoded = decode_hook_body(_raw(body), DEPTH)
    assert decoded.envelope["zzUnknown"] == {"a": [None]}
    assert decoded.with_prefetch({"patient"}, DEPTH)["prefetch"] == {"patient": body["prefetch"]["patient"]}


def test_the_schema_sees_object_members_as_empty_objects_and_other_members_as_they_are() -> None:
    prefetch = {"patient": {"resourceType": "Patient", "id": "p"}, "conditions": None, "odd": [1, "two"],
                "text": "x", "number": 2.5}  # fmt: skip
    view = decode_hook_body(_raw(hook_request(prefetch=prefetch)), DEPTH).schema_view()
    assert view["prefetch"] == {"patient": {}, "conditions": None, "odd": [1, "two"], "text": "x", "number": 2.5}


def test_only_the_members_named_are_decoded() -> None:
    decoded = decode_hook_body(_raw(hook_request(prefetch=full_prefetch())), DEPTH)
    body = decoded.with_prefetch({"patient", "conditions", "absent-key"}, DEPTH)
    assert body["prefetch"] == {"patient": full_prefetch()["patient"], "conditions": full_prefetch()["conditions"]}


@hyp_settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=20,
    ),
    st.booleans(),
)
def test_decoded_values_are_the_ones_json_loads_reads(value: Any, ascii_only: bool) -> None:
    body = hook_request(prefetch={"patient": {"resourceType": "Patient", "x": value}})
    body["extension"] = {"x": value}
    raw = _raw(body, ensure_ascii=ascii_only)
    expected = json.loads(raw)
    decoded = decode_hook_body(raw, DEPTH)
    got = decoded.with_prefetch({"patient"}, DEPTH)
    assert got == expected
    for member in ("prefetch", "extension"):  # int stays int, -0.0 stays -0.0, key order kept
        assert repr(got[member]) == repr(expected[member])


def test_a_parsed_body_gives_the_same_views() -> None:
    body = hook_request(prefetch=full_prefetch())
    parsed = HookBody.parsed(body)
    decoded = decode_hook_body(_raw(body), DEPTH)
    assert parsed.envelope == decoded.envelope
    assert parsed.with_prefetch({"patient"}, DEPTH)["prefetch"]["patient"] == body["prefetch"]["patient"]
    assert not parsed.from_json
    assert HookBody.parsed([1]).schema_view() == [1]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"hook": "order-sign",\n "x": [1,]}', "line 2, column 10"),
        (b'{"a": "\xc3\xa9\xc3\xa9", "b": tru}', "line 1, column 19"),  # characters: in bytes, 21
        (b'{"prefetch": {"p": {"v": 1}}, "hook": NaN}', "line 1, column 39"),
        (b'{"prefetch": {"p": {"v": "\\ud800"}}}', "line 1, column"),
        (b'{"hook": "x"', "line 1, column 13"),
    ],
)
def test_malformed_json_names_line_and_column(raw: bytes, where: str) -> None:
    with pytest.raises(HookError) as err:
        decode_hook_body(raw, DEPTH)
    assert err.value.status == 400
    assert err.value.issues[0].diagnostics.startswith(f"The request body is not valid JSON at {where}")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be", "utf-8-sig"])
def test_utf16_utf32_and_a_bom_are_read_as_json_loads_reads_them(encoding: str) -> None:
    body = hook_request(prefetch=full_prefetch())
    body["context"]["userId"] = "Practitioner/é"
    decoded = decode_hook_body(json.dumps(body, ensure_ascii=False).encode(encoding), DEPTH)
    assert decoded.with_prefetch({"patient"}, DEPTH)["context"]["userId"] == "Practitioner/é"


@pytest.mark.parametrize("raw", [b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}', b'{"a": "\xc0\xaf"}',
                                 '{"a": "\ud800"}'.encode("utf-16", "surrogatepass")])  # fmt: skip
def test_text_that_is_not_valid_in_its_encoding_is_400(raw: bytes) -> None:
    with pytest.raises(HookError) as err:
        decode_hook_body(raw, DEPTH)
    assert (err.value.status, err.value.issues[0].diagnostics) == (400, "The request body is not UTF-8 text")


@pytest.mark.parametrize(("limit", "too_deep"), [(4, False), (3, True)])
def test_envelope_depth_is_checked_at_once_prefetch_depth_when_read(limit: int, too_deep: bool) -> None:
    body = {"hook": "order-sign", "context": {"draftOrders": {"entry": []}},  # context 2, draftOrders 3, entry 4
            "prefetch": {"patient": {"a": {"b": {"c": {}}}}}}  # fmt: skip
    if too_deep:
        with pytest.raises(HookError) as err:
            decode_hook_body(_raw(body), limit)
        assert err.value.issues[0].expression is None
        return
    decoded = decode_hook_body(_raw(body), limit)  # the prefetch nests 7 levels: not checked yet
    with pytest.raises(HookError) as err:
        decoded.with_prefetch({"patient"}, limit)
    assert err.value.issues[0].expression == "prefetch"
    assert decode_hook_body(_raw(body), 7).with_prefetch({"patient"}, 7)["prefetch"]["patient"]["a"]


def test_a_member_not_read_still_counts_for_the_depth() -> None:
    body = {"hook": "order-sign", "prefetch": {"patient": {}, "not-read": [[[[]]]]}}  # not-read: levels 3-6
    decoded = decode_hook_body(_raw(body), 6)
    assert decoded.with_prefetch({"patient"}, 6)["prefetch"] == {"patient": {}}
    with pytest.raises(HookError):
        decode_hook_body(_raw(body), 5).with_prefetch({"patient"}, 5)


def test_another_drug_decodes_no_prefetch_member(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("a prefetch member was decoded for another drug's order")

    monkeypatch.setattr(body_module, "_decode_members", refuse)
    client = create_app(settings(), kb=kb).test_client()
    body = hook_request(orders=[other_order()], prefetch=full_prefetch())
    response = client.post(SIGN, data=_raw(body), content_type="application/json")
    assert (response.status_code, response.get_json()) == (200, {"cards": []})


def test_a_ketamine_order_decodes_the_members_the_templates_name(kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[set[str]] = []
    capped: list[set[str]] = []
    original = body_module._decode_members

    def spy(members: Any, keys: Any, max_depth: int, partly: Any = ()) -> Any:
        asked.append(set(keys))
        capped.append(set(partly))
        return original(members, keys, max_depth, partly)

    monkeypatch.setattr(body_module, "_decode_members", spy)
    client = create_app(settings(), kb=kb).test_client()
    response = client.post(SIGN, data=_raw(hook_request(prefetch=full_prefetch())), content_type="application/json")
    assert response.status_code == 200
    assert asked == [set(full_prefetch())]
    assert capped == [{"bloodPressure", "bodyWeight"}]  # vital-sign searches: only what the record reads


@pytest.mark.parametrize(("declared", "status"), [(-10, 400), (0, 200), (10, 400)])
def test_the_body_is_read_to_its_content_length(kb: Any, declared: int, status: int) -> None:
    """Fewer bytes than the Content-Length: 400 (the client went away); more: only the declared ones count."""
    client = create_app(settings(), kb=kb).test_client()
    raw = _raw(hook_request(orders=[other_order()]))
    response = client.post(SIGN, data=raw, content_type="application/json",
                           environ_overrides={"CONTENT_LENGTH": str(len(raw) + declared)})  # fmt: skip
    assert response.status_code == status
    assert response.get_json()["resourceType" if status == 400 else "cards"] == (
        "OperationOutcome" if status == 400 else [])
