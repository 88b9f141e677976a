"""Which of the resources obtained belong in the record: the context patient's, one copy of each.

| what arrives                                          | what the record does (clinical-rules.md §10)            |
|-------------------------------------------------------|---------------------------------------------------------|
| ``subject``/``patient`` names another patient (or a   | never used; counted as set aside ("belong to another    |
| Group, a Location ...), a Patient with another id     | patient")                                               |
| a reference that cannot be resolved here (``urn:``,   | used: the search asked for this patient, and a          |
| ``#``, identifier or display only, none at all)       | contraindication is never dropped on a doubt            |
| two copies with the same type and id, same content    | one copy                                                |
| copies that differ, one newer (``meta.versionId``,     | the newest                                              |
| else ``meta.lastUpdated``)                            |                                                         |
| copies that differ and neither is newer               | the more cautious reading (the builder decides per     |
|                                                       | kind), and the cards say so                             |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from cds_service.record.dates import parse_fhir_datetime
from cds_service.record.fhirdata import content_key, is_mapping
from cds_service.record.normalise import Repairs

_SUBJECT_ELEMENTS: Final = ("subject", "patient")


def of_another_patient(resource: Mapping[str, Any], rtype: str, patient_id: str) -> bool:
    """True when the resource positively names a subject other than Patient ``patient_id``."""
    return SubjectCheck(patient_id).of_another_patient(resource, rtype)


class SubjectCheck:
    """``of_another_patient`` for one context patient, for one record build: the verdict on each reference
    text is worked out once (a record names its patient the same way thousands of times)."""

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self._another: dict[str, bool] = {}  # reference text -> names another subject

    def of_another_patient(self, resource: Mapping[str, Any], rtype: str) -> bool:
        """True when the resource positively names a subject other than Patient ``patient_id``."""
        if rtype == "Patient":
            rid = resource.get("id")
            return isinstance(rid, str) and bool(rid) and rid != self.patient_id
        for element in _SUBJECT_ELEMENTS:
            reference = resource.get(element)
            if not is_mapping(reference):
                continue
            target = reference.get("reference")
            if not isinstance(target, str):
                return False  # identifier or display only
            another = self._another.get(target)
            if another is None:
                another = self._another[target] = self._names_another(target)
            return another
        return False

    def _names_another(self, target: str) -> bool:
        if not target or target.startswith(("#", "urn:")):
            return False  # a reference only the sender can resolve
        named = referenced(target)
        return named is not None and named != ("Patient", self.patient_id)


def referenced(reference: str) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute literal reference, version dropped: ``.../Patient/1/_history/2``."""
    parts = reference.split("/_history/")[0].split("?")[0].rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2] or not parts[-1]:
        return None
    return parts[-2], parts[-1]


def distinct_copies(copies: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The copies that say different things (``meta`` aside), in the order received.

    Of copies with the same content the newest by ``meta`` is kept, so a re-sent identical resource is one.
    """
    by_content: dict[bytes, list[Mapping[str, Any]]] = {}
    unkeyed: list[Mapping[str, Any]] = []
    for copy in copies:
        key = content_key({k: v for k, v in copy.items() if k != "meta"})
        if key is None:
            unkeyed.append(copy)
        else:
            by_content.setdefault(key, []).append(copy)
    kept = [group[0] if len(group) == 1 else (newest_version(group, None) or group[0]) for group in by_content.values()]
    return kept + unkeyed


def newest_version(copies: Sequence[Mapping[str, Any]], repairs: Repairs | None) -> Mapping[str, Any] | None:
    """The one copy that is newer than all others, by ``meta.versionId`` when every copy has a whole-number
    one, else by ``meta.lastUpdated`` when every copy has one; None when no single copy is newest."""
    versions = [_version_number(c) for c in copies]
    if all(v is not None for v in versions):
        return _single_max(copies, versions)
    updated = [_last_updated(c, repairs) for c in copies]
    if all(u is not None for u in updated):
        return _single_max(copies, updated)
    return None


def _single_max(copies: Sequence[Mapping[str, Any]], keys: Sequence[Any]) -> Mapping[str, Any] | None:
    top = max(keys)
    winners = [c for c, k in zip(copies, keys, strict=True) if k == top]
    return winners[0] if len(winners) == 1 else None


def _meta(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = resource.get("meta")
    return meta if is_mapping(meta) else {}


def _version_number(resource: Mapping[str, Any]) -> int | None:
    version = _meta(resource).get("versionId")
    if isinstance(version, str) and version.isdigit():
        return int(version)
    return None


def _last_updated(resource: Mapping[str, Any], repairs: Repairs | None) -> float | None:
    value = _meta(resource).get("lastUpdated")
    if repairs is not None:
        value = repairs.localise(value) or value
    when = parse_fhir_datetime(value)
    return None if when is None else when.timestamp()
