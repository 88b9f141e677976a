"""The JSON text of a vital-sign search decoded only as far as the record reads it (``record/partial.py``).

Of five years of daily blood pressures the record keeps the newest ``vitals.max_readings_per_kind`` valid
readings; decoding every reading into Python objects cost more than the rest of the call (a 1.7 MB Bundle of
1,800 readings: 14 ms to decode, several more to free). Here the Bundle is split into its entries without
building them, and of each Observation only ``INTAKE_ELEMENTS`` are decoded, into a ``PartialResource`` that
decodes the whole reading when the record asks for it. Everything else is decoded as it stands.

The text was read once already (``hooks/body.py``: its syntax, UTF-8 and nesting are checked); what that pass
does not check is the range of numbers, which only a decode does (a number beyond a double is refused with
400 in every prefetch key the service reads, ``openapi.yaml``). A text that may hold such a number
(``_may_hold_a_huge_number``: an exponent of three digits or more, or a run of 200 digits) is not split:
``decode_capped_search`` returns None and the caller decodes it whole, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypedDict, cast

import msgspec

from cds_service.record.partial import INTAKE_ELEMENTS, PartialResource

_SKIP: Final = msgspec.UNSET


class _Entry(TypedDict, total=False):
    """A Bundle entry (R4 ``Bundle.entry``) with its resource left as JSON text."""

    id: Any
    extension: Any
    modifierExtension: Any
    link: Any
    fullUrl: Any
    resource: msgspec.Raw
    search: Any
    request: Any
    response: Any


class _Bundle(TypedDict, total=False):
    """A Bundle (R4: every element a Bundle has), its entries split; any other member is dropped (nothing reads
    one: the prefetch resolution reads ``resourceType``, ``link`` and ``entry``)."""

    resourceType: Any
    id: Any
    meta: Any
    implicitRules: Any
    language: Any
    identifier: Any
    type: Any
    timestamp: Any
    total: Any
    link: Any
    entry: list[_Entry]
    signature: Any


# What the intake reads of a reading, as a type: members of other names are skipped, not built.
_Head = TypedDict("_Head", dict.fromkeys(INTAKE_ELEMENTS, Any), total=False)  # type: ignore[misc]


class _EntryHead(TypedDict, total=False):
    resource: _Head


class _BundleHeads(TypedDict, total=False):
    """The same Bundle, with only what the intake reads of each entry's resource (one pass for all of them)."""

    entry: list[_EntryHead]


_BUNDLE: Final = msgspec.json.Decoder(_Bundle)
_HEADS: Final = msgspec.json.Decoder(_BundleHeads)
_HEAD: Final = msgspec.json.Decoder(_Head)
_VALUE: Final = msgspec.json.Decoder()
# _may_hold_a_huge_number: digits -> "0", e/E -> "e", signs deleted, every other byte -> "x"
_NUMBER_SHAPE: Final = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord("e") if b in b"eE" else ord("x") for b in range(256)
)
_SIGNS: Final = b"+-"


def decode_capped_search(raw: bytes | msgspec.Raw) -> dict[str, Any] | None:
    """The search Bundle in ``raw`` with each entry's Observation a ``PartialResource``; None when it must be
    decoded whole (not a Bundle of entries, or a number that may be beyond a double)."""
    if _may_hold_a_huge_number(raw):
        return None
    try:
        bundle: dict[str, Any] = _BUNDLE.decode(raw)  # type: ignore[assignment]
    except msgspec.ValidationError:  # not an object, entries not objects, ...
        return None
    if bundle.get("resourceType") != "Bundle":
        return None
    entries = bundle.get("entry", [])
    try:  # the entries' heads in one pass (the same text: the same entries, in order)
        heads: list[Any] = [entry.get("resource") for entry in _HEADS.decode(raw).get("entry", ())]
    except msgspec.ValidationError:  # a resource that is not an object: each entry on its own
        heads = [None] * len(entries)
    for entry, head in zip(entries, heads, strict=True):
        text = entry.get("resource", _SKIP)
        if text is not _SKIP:
            entry["resource"] = _resource(text, head)
    return bundle


class _Reading(PartialResource):
    """An Observation of a capped search: its intake elements, and its text in the request bytes."""

    __slots__ = ()

    @staticmethod
    def decode(text: Any) -> dict[str, Any]:
        whole: dict[str, Any] = _VALUE.decode(text)
        return whole


def _resource(text: msgspec.Raw, head: Mapping[str, Any] | None) -> Any:
    """The entry's resource: a partial reading of an Observation (``head``: its intake elements, when already
    decoded), anything else whole."""
    if head is None:
        try:
            head = cast(Mapping[str, Any], _HEAD.decode(text))
        except msgspec.ValidationError:  # not an object: as it stands
            return _VALUE.decode(text)
    if head.get("resourceType") != "Observation":
        return _VALUE.decode(text)
    reading = _Reading(head)
    reading.text = text
    return reading


def _may_hold_a_huge_number(raw: bytes | msgspec.Raw) -> bool:
    """True when ``raw`` may hold a number beyond a double: one with an exponent of three digits or more, or
    with 200 digits before its point (a double ends near 1.8e308; with an exponent under 100, 210 digits are
    needed to pass it). Digits in strings may answer True too: the text is then decoded whole."""
    text = raw if isinstance(raw, bytes) else memoryview(raw).tobytes()
    shape = text.translate(_NUMBER_SHAPE, _SIGNS)
    return b"0e000" in shape or b"0" * 200 in shape
