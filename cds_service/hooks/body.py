"""A hook request body, read only as far as the answer needs: the envelope at once, the prefetch when read.

Most calls are for drugs other than ketamine, and their answer (``{"cards": []}``) needs the envelope
(``hook``, ``hookInstance``, ``fhirServer``, ``fhirAuthorization``, ``context``, ``extension``) and
nothing of the prefetch, which holds nearly all of the bytes. :func:`decode_hook_body` reads the request
bytes in one pass of a typed decoder (msgspec, reasons in ``pyproject.toml``): it checks the syntax of
every byte, builds Python objects for the envelope, and keeps each prefetch member as its raw JSON text.
:meth:`HookBody.with_prefetch` decodes the members a service reads, once a ketamine or esketamine
order has been found.

What a client sees, whichever part of the body holds the problem (``openapi.yaml`` documents it):

| body                                                  | answer                                          |
|-------------------------------------------------------|-------------------------------------------------|
| malformed JSON anywhere, prefetch included            | 400, line and column                            |
| ``NaN``, ``Infinity``, ``-Infinity``                  | 400 malformed JSON (RFC 8259 has no such values) |
| not UTF-8; a lone surrogate, escaped or encoded       | 400 (RFC 8259 §8.1; I-JSON, RFC 7493 §2.1)      |
| UTF-16/32 (detected as RFC 4627 says), UTF-8 BOM      | read, as before                                 |
| duplicate member names                                | the last one wins, as before                    |
| integer beyond 64 bits                                | read exactly, as before (then judged as before) |
| number beyond a 64-bit float (``1e400``), in a part read | 400 naming the member                        |
| envelope nested deeper than ``max_depth``             | 400 at once                                     |
| prefetch nested deeper than ``max_depth``             | 400 when the prefetch is read (ketamine orders) |

A body already parsed (the sandbox, tests) is wrapped by :meth:`HookBody.parsed`: the same interface.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Final

import msgspec

from cds_service.fhir.capped_search import decode_capped_search
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.limits import nesting_exceeds, raw_nesting_exceeds, too_deep

PREFETCH: Final = "prefetch"
# The prefetch object is level 2 of the body, its members level 3.
_MEMBER_LEVEL: Final = 3
_ABSENT: Final[Any] = msgspec.UNSET


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """The members of a CDS Hooks request, the prefetch's values kept raw. A body with any other member,
    or whose prefetch is not an object, does not fit this type: it is read member by member instead."""

    hook: Any = _ABSENT
    hookInstance: Any = _ABSENT
    fhirServer: Any = _ABSENT
    fhirAuthorization: Any = _ABSENT
    context: Any = _ABSENT
    extension: Any = _ABSENT
    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType = _ABSENT


_ENVELOPE_FIELDS: Final = tuple(f for f in _Envelope.__struct_fields__ if f != PREFETCH)
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_VALUE = msgspec.json.Decoder()
_BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")


class HookBody:
    """A hook request body: ``envelope`` (every member but the prefetch; the whole value when the body is
    not an object) and the prefetch, whose members are decoded only when read."""

    __slots__ = ("_prefetch", "_raw_members", "_view", "envelope", "from_json")

    def __init__(self, envelope: Any, prefetch: Any = _ABSENT, *, from_json: bool) -> None:
        """``prefetch``: absent (``_ABSENT``) or Python values; see :meth:`raw` for raw members."""
        self.envelope = envelope
        self.from_json = from_json  # every value is what a JSON decoder made (dict, list, str, int, ...)
        self._raw_members: dict[str, msgspec.Raw] | None = None
        self._prefetch = self._view = prefetch

    @classmethod
    def raw(cls, envelope: dict[str, Any], members: dict[str, msgspec.Raw], max_depth: int) -> HookBody:
        """A decoded envelope and the prefetch's members as raw JSON text (their syntax already checked)."""
        body = cls(envelope, members, from_json=True)
        body._raw_members = members
        body._view = {key: _placeholder(key, raw, max_depth) for key, raw in members.items()}
        return body

    @classmethod
    def parsed(cls, body: Any) -> HookBody:
        """A body already parsed into Python values (the sandbox, tests)."""
        if not isinstance(body, Mapping):
            return cls(body, from_json=False)
        envelope = {k: v for k, v in body.items() if k != PREFETCH}
        return cls(envelope, body.get(PREFETCH, _ABSENT), from_json=False)

    def schema_view(self) -> Any:
        """What the request schema judges: the envelope, and the prefetch with each object member replaced
        by ``{}`` (the schema asks of a member only that it be an object or null): no member is decoded
        for it."""
        if self._view is _ABSENT or not isinstance(self.envelope, dict):
            return self.envelope
        return {**self.envelope, PREFETCH: self._view}

    def with_prefetch(self, keys: Collection[str], max_depth: int, capped: Collection[str] = ()) -> dict[str, Any]:
        """The body with its prefetch, of which only the members named in ``keys`` (nothing reads the
        others); the members named in ``capped`` are vital-sign searches, of whose readings the record reads
        only the newest: their Observations are decoded as far as it reads them (``fhir/capped_search.py``).
        ``HookError`` 400 when the prefetch nests deeper than ``max_depth``."""
        if not isinstance(self.envelope, dict):
            raise TypeError("the body is not an object: validate it first")
        if self._prefetch is _ABSENT:
            return dict(self.envelope)
        if self._raw_members is not None:
            return {**self.envelope, PREFETCH: _decode_members(self._raw_members, keys, max_depth, capped)}
        if _parsed_too_deep(self._prefetch, max_depth):
            raise HookError(400, too_deep(max_depth, PREFETCH))
        return {**self.envelope, PREFETCH: self._prefetch}


def decode_hook_body(raw: bytes, max_depth: int) -> HookBody:
    """Read request bytes (already checked for size and emptiness) into a ``HookBody``.

    ``HookError`` 400: not UTF-8 text (or UTF-16/32), malformed JSON anywhere, a number beyond a 64-bit
    float in the envelope, or an envelope nested deeper than ``max_depth``.
    """
    raw = utf8_body(raw)
    try:
        try:
            body = _request(_ENVELOPE.decode(raw), max_depth)
        except msgspec.ValidationError:  # another member, a prefetch that is not an object, not an object
            body = _by_member(raw, max_depth)
    except msgspec.DecodeError as exc:  # the syntax (a ValidationError left here would be a DecodeError too)
        raise HookError(400, malformed(raw, exc)) from exc
    except RecursionError as exc:  # the decoder's own guard, far deeper than max_depth
        raise HookError(400, too_deep(max_depth)) from exc
    if nesting_exceeds(body.envelope, max_depth):
        raise HookError(400, too_deep(max_depth))
    return body


def utf8_body(raw: bytes) -> bytes:
    """The body as UTF-8 without a BOM: UTF-16/32 bodies (and a UTF-8 BOM) are transcoded, as ``json.loads``
    reads them; ``HookError`` 400 when the text is not valid in its encoding (lone surrogates included)."""
    if raw.isascii() and b"\x00" not in raw[:4]:  # UTF-16/32 of ASCII text is ASCII too, with NULs
        return raw
    try:
        encoding = json.detect_encoding(raw)
        if encoding == "utf-8":
            raw.decode("utf-8")  # strict: no surrogates, no overlong forms
            return raw
        return raw.decode(encoding).encode("utf-8")
    except UnicodeError as exc:
        raise HookError(400, Issue("The request body is not UTF-8 text", code="structure")) from exc


def malformed(raw: bytes, exc: msgspec.DecodeError) -> Issue:
    """The 400 issue of a body that is not JSON: where, as a line and a column (in characters)."""
    found = _BYTE_OFFSET.search(str(exc))
    offset = min(int(found.group(1)), len(raw)) if found else len(raw)
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", "replace")) + 1
    return Issue(f"The request body is not valid JSON at line {line}, column {column}", code="structure")


def _request(envelope: _Envelope, max_depth: int) -> HookBody:
    members = {name: value for name in _ENVELOPE_FIELDS if (value := getattr(envelope, name)) is not _ABSENT}
    if isinstance(envelope.prefetch, dict):
        return HookBody.raw(members, envelope.prefetch, max_depth)
    return HookBody(members, from_json=True)


def _by_member(raw: bytes, max_depth: int) -> HookBody:
    """A body that is not a plain CDS Hooks request: each member decoded on its own (the prefetch's
    members kept raw when it is an object), or the whole value when the body is not an object."""
    try:
        members = _MEMBERS.decode(raw)
    except msgspec.ValidationError:
        return HookBody(_value(raw, max_depth, None), from_json=True)
    envelope = {k: _value(v, max_depth, k) for k, v in members.items() if k != PREFETCH}
    prefetch = members.get(PREFETCH)
    if prefetch is None:
        return HookBody(envelope, from_json=True)
    if _first_byte(prefetch) == ord("{"):
        return HookBody.raw(envelope, _MEMBERS.decode(prefetch), max_depth)
    return HookBody(envelope, _value(prefetch, max_depth, PREFETCH), from_json=True)


def _decode_members(
    members: Mapping[str, msgspec.Raw], keys: Collection[str], max_depth: int, capped: Collection[str] = ()
) -> dict[str, Any]:
    """The members named in ``keys``, decoded (those in ``capped`` as far as the record reads them);
    ``HookError`` 400 when any member, read or not, nests deeper than ``max_depth`` (the limit is the body's)."""
    if members and max_depth < _MEMBER_LEVEL - 1:
        raise HookError(400, too_deep(max_depth, PREFETCH))
    for raw in members.values():
        if raw_nesting_exceeds(memoryview(raw).tobytes(), max_depth - (_MEMBER_LEVEL - 1)):
            raise HookError(400, too_deep(max_depth, PREFETCH))
    decoded: dict[str, Any] = {}
    for key, raw in members.items():
        if key in keys:
            search = decode_capped_search(raw) if key in capped else None
            decoded[key] = _value(raw, max_depth, f"{PREFETCH}.{key}") if search is None else search
    return decoded


def _value(raw: msgspec.Raw | bytes, max_depth: int, where: str | None) -> Any:
    """One JSON value as Python values."""
    try:
        return _VALUE.decode(raw)
    except msgspec.ValidationError as exc:  # the only one of an untyped decoder: a number beyond a double
        issue = Issue("A number in the request body is beyond the range of a 64-bit float", code="value",
                      expression=where)  # fmt: skip
        raise HookError(400, issue) from exc
    except RecursionError as exc:
        raise HookError(400, too_deep(max_depth, where)) from exc


def _placeholder(key: str, raw: msgspec.Raw, max_depth: int) -> Any:
    """A prefetch member as the schema check needs it: ``{}`` for an object, else its value."""
    first = _first_byte(raw)
    if first == ord("{"):
        return {}
    if first == ord("n"):
        return None
    return _value(raw, max_depth, f"{PREFETCH}.{key}")  # not an object: the schema check names it


def _first_byte(raw: msgspec.Raw) -> int:
    view = memoryview(raw)
    return view[0] if len(view) else -1


def _parsed_too_deep(prefetch: Any, max_depth: int) -> bool:
    """The prefetch of a parsed body nests deeper than ``max_depth`` (body level 1, prefetch level 2)."""
    encoded = json.dumps({PREFETCH: prefetch}, default=str).encode()
    return raw_nesting_exceeds(encoded, max_depth)
