"""Card JSON helpers on the rendering path: ``_compact`` drops exactly None, [], {} and "" (as it always
did: 0, False and other empty values stay), and the uuid check accepts and refuses what ``uuid.UUID``
does, with a fast path for the canonical form."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cds_service.cards.model import Card, CardModelError, Coding, Source, _compact, new_uuid

SOURCE = Source(label="ketamine-cds", url="https://cds.example.org/docs/rules#x", topic=Coding("urn:x", "x"))
VALUES: list[Any] = [None, [], {}, "", 0, 0.0, False, (), frozenset(), b"", "x", " ", [None], {"": None}, 1, True,
                     ("a",), [[]], {"a": []}]


def _reference_compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != [] and v != {} and v != ""}


def test_compact_drops_exactly_none_and_empty_lists_objects_and_strings() -> None:
    data = {f"k{i}": v for i, v in enumerate(VALUES)}
    out = _compact(data)
    assert out == _reference_compact(data)
    assert list(out) == [k for k in data if k in out]  # key order kept
    kept = [v for v in out.values()]
    assert 0 in kept and False in kept and () in kept and b"" in kept
    assert None not in kept and [] not in kept and {} not in kept and "" not in kept


@pytest.mark.parametrize(
    "value",
    [
        new_uuid(),
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",  # upper case
        "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
        "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "6f9619ff8b86d011b42d00c04fc964ff",
        uuid.uuid4(),  # a UUID object, checked through str() as before
    ],
)
def test_card_accepts_what_uuid_accepts(value: Any) -> None:
    uuid.UUID(str(value))
    Card(summary="x", indicator="info", source=SOURCE, uuid=value)


@pytest.mark.parametrize(
    "value",
    ["card-1", "", "6f9619ff-8b86-d011-b42d-00c04fc964f", "6f9619ff-8b86-d011-b42d-00c04fc964ffa",
     "6f9619ff-8b86-d011-b42d-00c04fc964fg", "6f9619ff-8b86-d011-b42d-00c04fc964ff\n", None, 42],
)
def test_card_refuses_what_uuid_refuses(value: Any) -> None:
    with pytest.raises(ValueError):
        uuid.UUID(str(value))
    with pytest.raises(CardModelError):
        Card(summary="x", indicator="info", source=SOURCE, uuid=value)


def test_override_reasons_given_as_lists_still_render() -> None:
    from cds_service.cards.render import OVERRIDE_SYSTEM, _override_reasons
    from cds_service.knowledge.model import Topic
    from cds_service.rules.findings import Indicator

    reasons: Any = [["code-a", "Reason A"], ["code-b", "Reason B"]]
    topic = Topic(code="t", section="s", title="T", logic="", source_label="l", variants={},
                  override_reasons=reasons)
    for _ in range(2):
        codings = _override_reasons(topic, Indicator.WARNING)
        assert [(c.system, c.code, c.display) for c in codings] == [
            (OVERRIDE_SYSTEM, "code-a", "Reason A"), (OVERRIDE_SYSTEM, "code-b", "Reason B")]
    assert _override_reasons(topic, Indicator.INFO) == ()
