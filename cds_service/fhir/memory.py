"""A small in-memory FHIR server over a list of resources: reads and the search parameters prefetch uses.

One implementation answers the prefetch of a generated request (the sandbox), the FHIR mock of the tests (the
service fetching what a request did not prefetch) and the prefetch of a replayed patient's export (the gather
stage's export source), so every path sees exactly the same data. Supported: reads
(``Patient/123``), type searches with ``patient``/``subject``, ``_id``, token parameters ``code`` and
``category`` (``system|code``, ``|code``, ``code``, comma = OR), ``status``, ``date`` with the
eq/ne/lt/gt/le/ge prefixes, ``_sort=[-]date``, ``_count`` (no paging) and
``_include=<Type>:medication``. Other parameters are ignored (the answer is then a superset, as a
lenient server's would be) and listed in ``SearchResult.ignored``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cds_service.record.fhirdata import coding_maps

_DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")

# Where each searchable resource keeps its patient reference and its clinically relevant date.
_PATIENT_PATHS = ("subject", "patient")
_DATE_PATHS = (
    "effectiveDateTime",
    "effectiveInstant",
    ("effectivePeriod", "start"),
    "issued",
    "authoredOn",
    "recordedDate",
    "onsetDateTime",
    "dateAsserted",
    ("period", "start"),
)


def resources_from_bundle(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Unpack a transaction/collection Bundle into resources with ids and relative references.

    Each entry whose ``fullUrl`` is ``urn:uuid:<u>`` gets ``id`` = ``<u>`` (unless it has one), and every
    ``reference`` to ``urn:uuid:<u>`` becomes ``<Type>/<id>``, the way a FHIR server stores a transaction.
    """
    entries = [
        e for e in bundle.get("entry") or () if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
    ]
    mapping: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for entry in entries:
        res = copy.deepcopy(dict(entry["resource"]))
        full_url = str(entry.get("fullUrl") or "")
        if not res.get("id") and full_url.startswith("urn:uuid:"):
            res["id"] = full_url[len("urn:uuid:") :]
        if full_url and res.get("id"):
            mapping[full_url] = f"{res['resourceType']}/{res['id']}"
        out.append(res)
    return [_rewrite_refs(r, mapping) for r in out]


def _rewrite_refs(doc: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(doc, dict):
        return {
            k: (mapping.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite_refs(v, mapping))
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_rewrite_refs(v, mapping) for v in doc]
    return doc


@dataclass
class SearchResult:
    """The answer to one query: a resource (read), ``None`` (read of nothing) or a searchset Bundle."""

    body: dict[str, Any] | None
    ignored: list[str] = field(default_factory=list)


class MemoryServer:
    """Answers FHIR reads and searches over a fixed list of resources (see module docstring)."""

    def __init__(
        self,
        resources: Iterable[Mapping[str, Any]],
        base_url: str = "https://fhir.example.org/r4",
        *,
        copies: bool = True,
    ):
        """``copies=False``: answers hold the resources themselves, not copies (for a caller that never changes
        them, such as replay, where copying was a quarter of the time per patient)."""
        self.resources = [dict(r) for r in resources]
        self.base_url = base_url.rstrip("/")
        self._copy: Any = copy.deepcopy if copies else _same

    def query(self, relative_url: str) -> SearchResult:
        """Answer ``Type/id`` or ``Type?params`` (a URL relative to the FHIR base, or an absolute one)."""
        parts = urlsplit(relative_url)
        path = parts.path
        if path.startswith(self.base_url):
            path = path[len(self.base_url) :]
        elif parts.scheme:
            base_path = urlsplit(self.base_url).path.rstrip("/")
            path = path[len(base_path) :] if path.startswith(base_path) else path
        path = path.strip("/")
        if "/" in path:
            rtype, rid = path.split("/", 1)
            found = self._by_id(rtype, rid)
            return SearchResult(self._copy(found) if found else None)
        return self.search(path, parse_qsl(parts.query, keep_blank_values=True))

    def _by_id(self, rtype: str, rid: str) -> dict[str, Any] | None:
        for res in self.resources:
            if res.get("resourceType") == rtype and res.get("id") == rid:
                return res
        return None

    def search(self, rtype: str, params: Sequence[tuple[str, str]]) -> SearchResult:
        matches = [r for r in self.resources if r.get("resourceType") == rtype]
        ignored: list[str] = []
        includes: list[str] = []
        sort: str | None = None
        count: int | None = None
        for name, value in params:
            base = name.split(":", 1)[0]
            if base in ("patient", "subject"):
                want = value if "/" in value else f"Patient/{value}"
                matches = [r for r in matches if _patient_ref(r) == want]
            elif base == "_id":
                ids = set(value.split(","))
                matches = [r for r in matches if r.get("id") in ids]
            elif base == "code" and ":" not in name:
                matches = [r for r in matches if _token_match(_codings(r, "code"), value)]
            elif base == "category" and ":" not in name:
                matches = [r for r in matches if _token_match(_codings(r, "category"), value)]
            elif base == "status":
                wanted = set(value.split(","))
                matches = [r for r in matches if r.get("status") in wanted]
            elif base == "date":
                matches = [r for r in matches if _date_match(_resource_date(r), value)]
            elif base == "_include":
                includes.append(value)
            elif base == "_sort":
                sort = value
            elif base == "_count":
                count = int(value) if value.isdigit() else None
            else:
                ignored.append(name)
        if sort in ("date", "-date"):
            matches.sort(key=lambda r: _resource_date(r) or "", reverse=sort.startswith("-"))
        elif sort is not None:
            ignored.append("_sort")
        if count is not None:
            matches = matches[:count]
        entries = [self._entry(r, "match") for r in matches]
        for inc in includes:
            if inc == f"{rtype}:medication":
                seen: set[str] = set()
                for r in matches:
                    ref = ((r.get("medicationReference") or {}).get("reference")) or ""
                    if ref.startswith("Medication/") and ref not in seen:
                        seen.add(ref)
                        med = self._by_id("Medication", ref.split("/", 1)[1])
                        if med:
                            entries.append(self._entry(med, "include"))
            else:
                ignored.append(f"_include={inc}")
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries}
        return SearchResult(bundle, ignored)

    def _entry(self, res: Mapping[str, Any], mode: str) -> dict[str, Any]:
        return {
            "fullUrl": f"{self.base_url}/{res['resourceType']}/{res['id']}",
            "resource": self._copy(dict(res)),
            "search": {"mode": mode},
        }


def _same(value: Any) -> Any:
    return value


def _patient_ref(res: Mapping[str, Any]) -> str | None:
    if res.get("resourceType") == "Patient":
        return f"Patient/{res.get('id')}"
    for key in _PATIENT_PATHS:
        ref = res.get(key)
        if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str):
            return str(ref["reference"])
    return None


_MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


def _codings(res: Mapping[str, Any], element: str) -> list[Mapping[str, Any]]:
    if element == "code" and res.get("resourceType") in _MEDICATION_TYPES:
        value: Any = res.get("medicationCodeableConcept")
    else:
        value = res.get(element)
    return [coding for concept in (value if isinstance(value, list) else [value]) for coding in coding_maps(concept)]


def _token_match(codings: Sequence[Mapping[str, Any]], value: str) -> bool:
    for token in value.split(","):
        if "|" in token:
            system, code = token.split("|", 1)
            if any(c.get("code") == code and (not system or c.get("system") == system) for c in codings):
                return True
        elif any(c.get("code") == token for c in codings):
            return True
    return False


def _resource_date(res: Mapping[str, Any]) -> str | None:
    for path in _DATE_PATHS:
        if isinstance(path, tuple):
            holder = res.get(path[0])
            val = holder.get(path[1]) if isinstance(holder, Mapping) else None
        else:
            val = res.get(path)
        if isinstance(val, str):
            return val
    return None


def _date_match(actual: str | None, value: str) -> bool:
    if actual is None:
        return False
    prefix, target = ("eq", value)
    if value[:2] in _DATE_PREFIXES and not value[:2].isdigit():
        prefix, target = value[:2], value[2:]
    a, t = actual[: len(target)] if prefix == "eq" else actual[:10], target[:10]
    return {
        "eq": a == target,
        "ne": a != target,
        "lt": a < t,
        "gt": a > t,
        "le": a <= t,
        "ge": a >= t,
        "sa": a > t,
        "eb": a < t,
        "ap": a == t,
    }[prefix]
