"""Search Bundles of which the record reads a few resources out of many, decoded resource by resource.

A heavy record holds years of vital signs (1,800 blood pressures in the benchmark's heavy patient, most of
the prefetch's bytes); the record reads the type, id, status, code and time of each, and all of only the
newest few (``vitals.max_readings_per_kind``). :func:`decode_bundle` decodes such a Bundle with its
entries' resources as :class:`LazyResource`: the members that pick a resource out are decoded at once, the
others on the first read of any of them. A ``LazyResource`` reads exactly like the dict ``json.loads``
makes (same keys, values, order and equality); only the cost of reading it differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import msgspec

from cds_service.hooks.errors import HookError, Issue

_ABSENT: Final[Any] = msgspec.UNSET


class _Picks(msgspec.Struct):
    """The members of a resource read to pick it out (``record.builder``: de-duplication, kind, status,
    newest first); any other member decodes the whole resource. A member missing here only costs time."""

    resourceType: Any = _ABSENT
    id: Any = _ABSENT
    status: Any = _ABSENT
    category: Any = _ABSENT
    code: Any = _ABSENT
    subject: Any = _ABSENT
    effectiveDateTime: Any = _ABSENT
    effectivePeriod: Any = _ABSENT
    effectiveInstant: Any = _ABSENT
    issued: Any = _ABSENT


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    """Bundle.entry (FHIR R4), the resource kept raw."""

    id: Any = _ABSENT
    extension: Any = _ABSENT
    modifierExtension: Any = _ABSENT
    link: Any = _ABSENT
    fullUrl: Any = _ABSENT
    resource: msgspec.Raw | msgspec.UnsetType = _ABSENT
    search: Any = _ABSENT
    request: Any = _ABSENT
    response: Any = _ABSENT


class _Bundle(msgspec.Struct, forbid_unknown_fields=True):
    """Bundle (FHIR R4), its entries' resources kept raw."""

    resourceType: Any = _ABSENT
    id: Any = _ABSENT
    meta: Any = _ABSENT
    implicitRules: Any = _ABSENT
    language: Any = _ABSENT
    identifier: Any = _ABSENT
    type: Any = _ABSENT
    timestamp: Any = _ABSENT
    total: Any = _ABSENT
    link: Any = _ABSENT
    entry: list[_Entry] | msgspec.UnsetType = _ABSENT
    signature: Any = _ABSENT


_PICKS: Final = frozenset(_Picks.__struct_fields__)
_PICKS_DECODER = msgspec.json.Decoder(_Picks)
_BUNDLE_DECODER = msgspec.json.Decoder(_Bundle)
_VALUE = msgspec.json.Decoder()


class LazyResource(Mapping[str, Any]):
    """A JSON object (a FHIR resource) whose members other than the picking ones are decoded on first use.

    ``raw`` must hold a JSON object whose syntax and nesting have been checked; ``where`` names it in the
    400 that a number beyond a 64-bit float in it gives when it is read (as an eagerly decoded one would).
    """

    __slots__ = ("_picks", "_raw", "_where", "_whole")

    def __init__(self, raw: msgspec.Raw | bytes, where: str) -> None:
        self._raw, self._where = raw, where
        self._picks = _PICKS_DECODER.decode(raw)
        self._whole: dict[str, Any] | None = None

    def _all(self) -> dict[str, Any]:
        whole = self._whole
        if whole is None:
            try:
                whole = _VALUE.decode(self._raw)
            except msgspec.ValidationError as exc:  # the only one of an untyped decoder
                raise HookError(400, out_of_range(self._where)) from exc
            except RecursionError as exc:  # only with a nesting limit near the interpreter's own
                raise HookError(400, Issue("JSON nesting is too deep to read", code="too-long",
                                           expression=self._where)) from exc  # fmt: skip
            for name in _PICKS:  # the values already handed out stay the same objects
                value = getattr(self._picks, name)
                if value is not _ABSENT:
                    whole[name] = value
            self._whole = whole
        return whole

    def __getitem__(self, key: str) -> Any:
        if self._whole is None and key in _PICKS:
            value = getattr(self._picks, key)
            if value is _ABSENT:
                raise KeyError(key)
            return value
        return self._all()[key]

    def get(self, key: str, default: Any = None) -> Any:
        if self._whole is None and key in _PICKS:
            value = getattr(self._picks, key)
            return default if value is _ABSENT else value
        return self._all().get(key, default)

    def __contains__(self, key: object) -> bool:
        if self._whole is None and isinstance(key, str) and key in _PICKS:
            return getattr(self._picks, key) is not _ABSENT
        return key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"LazyResource({self._all()!r})"


def decode_bundle(raw: msgspec.Raw | bytes, where: str) -> Any:
    """A JSON value (its syntax and nesting checked) as ``json.loads`` reads it, except that when it is a
    Bundle each entry's resource that is an object is a :class:`LazyResource`. A member the Bundle or an
    entry does not define in FHIR R4 makes the whole value decoded as usual."""
    try:
        bundle = _BUNDLE_DECODER.decode(raw)
    except msgspec.ValidationError:  # not Bundle-shaped (or a number beyond a double): as usual
        return _VALUE.decode(raw)
    out = _present(bundle, _Bundle.__struct_fields__)
    if isinstance(bundle.entry, list):
        out["entry"] = [_entry(entry, where) for entry in bundle.entry]
    return out


def _entry(entry: _Entry, where: str) -> dict[str, Any]:
    out = _present(entry, _Entry.__struct_fields__)
    resource = entry.resource
    if isinstance(resource, msgspec.Raw):
        out["resource"] = LazyResource(resource, where) if _is_object(resource) else _VALUE.decode(resource)
    return out


def out_of_range(where: str | None) -> Issue:
    """The 400 issue of a number beyond the range of a 64-bit float (``1e400``)."""
    return Issue("A number in the request body is beyond the range of a 64-bit float", code="value",
                 expression=where)  # fmt: skip


def _present(struct: msgspec.Struct, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: value for name in names if (value := getattr(struct, name)) is not _ABSENT}


def _is_object(raw: msgspec.Raw) -> bool:
    view = memoryview(raw)
    return len(view) > 0 and view[0] == ord("{")
