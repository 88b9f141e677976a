"""Prefetch resolution, key by key, as the CDS Hooks decision table says (cds-hooks-spec.md §3).

| state of key k                         | what happens                                                   |
|----------------------------------------|----------------------------------------------------------------|
| present (resource or Bundle)           | used as is                                                      |
| present, Bundle with a ``next`` link   | next pages read from fhirServer (keys that follow pages), capped; |
|                                        | a latest-value key reads on while every reading is dated after now |
| ``null``                               | no data exists: kind available and empty, never re-queried      |
| OperationOutcome (or error OO entries) | a data gap, never re-queried; 412 when k is required            |
| absent (or no ``prefetch`` at all)     | read from fhirServer (allowlisted only), all such keys in parallel |
| unobtainable                           | a data gap; 412 when k is required                              |

A record kind fed by several keys (medication history: requests and statements; scores: by category and by
code) counts as available only when every one of its keys was obtained.

Nothing here raises for bad data: every failure becomes a ``DataGap`` or an entry of
``unobtainable_required`` (the pipeline turns those into 412).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

import requests

from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist, same_server
from cds_service.fhir.client import FetchError, FhirClient, new_session
from cds_service.fhir.templates import TemplateError, fill
from cds_service.record.dates import effective_timestamp
from cds_service.record.fhirdata import bundle_resources, is_mapping, next_link
from cds_service.record.model import DataGap

log = logging.getLogger(__name__)

MEDICATION_BATCH = 50
MEDICATION_GAP_KEY = "medicationReference"
_MEDICATION_USERS = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


@dataclass(frozen=True, slots=True)
class PrefetchKey:
    """One prefetch template and what the service does with its data.

    ``kind`` is the record data kind (``record/kinds.py``) the key feeds; ``required`` keys that cannot be
    obtained give 412, others a data gap named in the cards; ``follow_pages`` says whether ``next`` links
    of a paged search are followed (latest-value searches need the first page only).
    """

    key: str
    template: str
    kind: str
    required: bool
    follow_pages: bool = True

    @property
    def is_read(self) -> bool:
        """An instance read (``Type/id``) rather than a search."""
        return "?" not in self.template

    @property
    def read_type(self) -> str | None:
        """The resource type an instance read returns (``Patient`` for ``Patient/{{...}}``); None for searches."""
        return self.template.split("/", 1)[0] if self.is_read else None

    @property
    def resource_type(self) -> str:
        """The resource type the template reads or searches (``_include``d types not counted)."""
        return self.template.split("?", 1)[0].split("/", 1)[0]


class ResolutionObserver(Protocol):
    """What resolving a prefetch reports as it goes, for the audit and the metrics: phase timings
    (``prefetch``, ``fhir_fetch``) and each FHIR fallback fetch. Never patient data."""

    def phase(self, name: str) -> AbstractContextManager[object]: ...

    def fetched(self, outcome: str, seconds: float) -> None:
        """One FHIR read or page: ``outcome`` is "ok" or a failure kind ("timeout", "http-500", ...)."""
        ...


class Unobserved:
    """A ``ResolutionObserver`` that records nothing."""

    def phase(self, name: str) -> AbstractContextManager[object]:
        return nullcontext()

    def fetched(self, outcome: str, seconds: float) -> None:
        return None


UNOBSERVED: Final = Unobserved()


@dataclass(frozen=True, slots=True)
class KeyResult:
    """What one prefetch key yielded. ``state``: present | null | fetched | gap."""

    key: PrefetchKey
    state: str
    resources: tuple[Mapping[str, Any], ...] = ()
    obtained: bool = True  # the data kind can be trusted as obtained (possibly empty)
    gap: str | None = None  # reason, plain words


@dataclass(frozen=True)
class PrefetchResolution:
    resources: tuple[Mapping[str, Any], ...]
    available: frozenset[str]
    gaps: tuple[DataGap, ...]
    unobtainable_required: tuple[DataGap, ...] = ()
    states: Mapping[str, str] = field(default_factory=dict)  # key -> state, for tests and audit
    incomplete: frozenset[str] = frozenset()  # kinds fed by a key that was not obtained

    def merged(self, later: PrefetchResolution) -> PrefetchResolution:
        """This resolution and ``later`` (of other keys of the same request) as one: a kind is available when
        some key fed it and every key that feeds it, in either, was obtained."""
        incomplete = self.incomplete | later.incomplete
        gaps = {gap.key: gap for gap in (*self.gaps, *later.gaps)}  # a gap named by both (medications) once
        return PrefetchResolution(
            resources=(*self.resources, *later.resources),
            available=(self.available | later.available) - incomplete,
            gaps=tuple(gaps.values()),
            unobtainable_required=(*self.unobtainable_required, *later.unobtainable_required),
            states={**self.states, **later.states},
            incomplete=incomplete,
        )


def resolve_prefetch(
    keys: Sequence[PrefetchKey],
    body: Mapping[str, Any],
    *,
    settings: Settings,
    allowlist: ServerAllowlist,
    session: requests.Session | None = None,
    observer: ResolutionObserver = UNOBSERVED,
    now: datetime | None = None,
) -> PrefetchResolution:
    """Resolve every prefetch key of a service for one (already schema-validated) hook request.

    ``now``: the evaluation instant. A latest-value search (``_sort=-date&_count=N``, first page only) whose
    page holds only readings dated after it (a device with a skewed clock) reads the next pages until one is
    not, so that the reading the rules need is not pushed out by future ones (clinical-rules.md §10).
    """
    more = _more_than_the_future(now)
    prefetch = body.get("prefetch")
    supplied: Mapping[str, Any] = prefetch if isinstance(prefetch, Mapping) else {}
    context = body.get("context")
    context = context if isinstance(context, Mapping) else {}

    server = body.get("fhirServer")
    refusal: str | None
    if not isinstance(server, str) or not server:
        refusal = "the request named no fhirServer to read it from"
    else:
        refusal = allowlist.refusal(server)
    client: FhirClient | None = None
    own_session = False
    if refusal is None and isinstance(server, str):
        if session is None:
            session, own_session = new_session(), True
        client = FhirClient(server, token=_token(body), settings=settings, session=session,
                           on_fetch=observer.fetched)

    results: dict[str, KeyResult] = {}
    tasks: dict[str, tuple[PrefetchKey, Callable[[], KeyResult]]] = {}
    try:
        with observer.phase("prefetch"):
            for key in keys:
                if key.key in supplied:
                    outcome = _from_supplied(key, supplied[key.key], client, more)
                    if isinstance(outcome, KeyResult):
                        results[key.key] = outcome
                    else:
                        tasks[key.key] = (key, outcome)
                elif client is None:
                    results[key.key] = KeyResult(key, "gap", obtained=False, gap=f"not prefetched, and {refusal}")
                else:
                    tasks[key.key] = (key, _fetch_task(key, context, client, more))
        doomed = any(k.required and not r.obtained for k in keys if (r := results.get(k.key)))
        if doomed:
            # the call ends in 412 whatever else arrives: do not spend FHIR reads on it
            for name, (key, _task) in tasks.items():
                results[name] = KeyResult(key, "gap", obtained=False, gap="not read: required data is missing")
            tasks = {}
        if tasks:
            with observer.phase("fhir_fetch"):
                results.update(_run_parallel(tasks))
        resources = [r for key in keys for r in results[key.key].resources]
        if doomed:
            medication_gap = None
        elif client is None:
            medication_gap = _resolve_medication_references(resources, None, refusal)
        else:
            with observer.phase("fhir_fetch"):
                medication_gap = _resolve_medication_references(resources, client, refusal)
    finally:
        if own_session and session is not None:
            session.close()

    gaps: list[DataGap] = []
    unobtainable: list[DataGap] = []
    available: set[str] = set()
    incomplete: set[str] = set()  # a kind is available only when every key that feeds it was obtained
    for key in keys:
        res = results[key.key]
        (available if res.obtained else incomplete).add(key.kind)
        if res.gap:
            gap = DataGap(key.key, res.gap)
            (unobtainable if key.required and not res.obtained else gaps).append(gap)
    if medication_gap:
        gaps.append(DataGap(MEDICATION_GAP_KEY, medication_gap))
    return PrefetchResolution(
        resources=tuple(resources),
        available=frozenset(available - incomplete),
        gaps=tuple(gaps),
        unobtainable_required=tuple(unobtainable),
        states={k: r.state for k, r in results.items()},
        incomplete=frozenset(incomplete),
    )


def _token(body: Mapping[str, Any]) -> str | None:
    auth = body.get("fhirAuthorization")
    if isinstance(auth, Mapping) and isinstance(auth.get("access_token"), str):
        token: str = auth["access_token"]
        return token
    return None


_More = Callable[[Sequence[Mapping[str, Any]]], bool] | None


def _more_than_the_future(now: datetime | None) -> _More:
    """For latest-value keys: another page is wanted while every reading read so far is dated after ``now``."""
    if now is None:
        return None
    limit = now.timestamp()

    def wanted(resources: Sequence[Mapping[str, Any]]) -> bool:
        stamps = [effective_timestamp(r) for r in resources]
        return bool(stamps) and all(t is not None and t > limit for t in stamps)

    return wanted


def _from_supplied(
    key: PrefetchKey, value: Any, client: FhirClient | None, more: _More = None
) -> KeyResult | Callable[[], KeyResult]:
    """A prefetched value: a KeyResult now, or a task that reads the remaining pages."""
    if value is None:
        return KeyResult(key, "null")
    if not isinstance(value, Mapping):
        return KeyResult(key, "gap", obtained=False, gap="the prefetched data was not a FHIR resource")
    rtype = value.get("resourceType")
    if rtype == "OperationOutcome":
        return KeyResult(key, "gap", obtained=False, gap="the EHR reported an error while prefetching")
    if not isinstance(rtype, str):
        return KeyResult(key, "gap", obtained=False, gap="the prefetched data was not a FHIR resource")
    if key.is_read and rtype == key.read_type:
        return KeyResult(key, "present", (value,))
    if rtype != "Bundle" or key.is_read:
        gap = f"the prefetched data was a {_shown(rtype)}, not {_expected(key)}"
        return KeyResult(key, "gap", obtained=False, gap=gap)
    resources, errors = bundle_resources(value)
    if errors:
        return KeyResult(
            key, "gap", tuple(resources), obtained=False, gap="the EHR reported an error while prefetching"
        )
    nxt = next_link(value)
    if not nxt or not (key.follow_pages or (more is not None and more(resources))):  # more(): only with a next page
        return KeyResult(key, "present", tuple(resources))
    if client is None or not same_server(nxt, client.base_url):
        return KeyResult(
            key, "present", tuple(resources), gap="only the first page of the prefetched results was sent"
        )

    def follow() -> KeyResult:
        # a page that fails ends paging, no raise
        result = client.continue_search(value, follow_pages=key.follow_pages, more=more)
        if result.outcome_errors:
            return KeyResult(
                key, "gap", result.resources, obtained=False, gap="the FHIR server reported an error on a page"
            )
        return KeyResult(key, "present", result.resources, gap=result.problem)

    return follow


def _fetch_task(
    key: PrefetchKey, context: Mapping[str, Any], client: FhirClient, more: _More = None
) -> Callable[[], KeyResult]:
    def fetch() -> KeyResult:
        try:
            relative = fill(key.template, context)
        except TemplateError as exc:
            return KeyResult(key, "gap", obtained=False, gap=f"not prefetched and the query could not be built: {exc}")
        try:
            if key.is_read:
                resource = client.read(relative)
                rtype = resource.get("resourceType")
                if rtype == "OperationOutcome":
                    return KeyResult(key, "gap", obtained=False, gap="the FHIR server reported an error")
                if rtype != key.read_type:
                    gap = f"the FHIR server answered with a {_shown(rtype)}, not {_expected(key)}"
                    return KeyResult(key, "gap", obtained=False, gap=gap)
                return KeyResult(key, "fetched", (resource,))
            result = client.search(relative, follow_pages=key.follow_pages, more=more)
        except FetchError as exc:
            return KeyResult(key, "gap", obtained=False, gap=exc.reason)
        if result.outcome_errors:
            return KeyResult(key, "gap", result.resources, obtained=False, gap="the FHIR server reported an error")
        return KeyResult(key, "fetched", result.resources, gap=result.problem)

    return fetch


def _expected(key: PrefetchKey) -> str:
    return f"the {key.read_type} the template reads" if key.is_read else "the search Bundle the template asks for"


def _shown(resource_type: Any) -> str:
    """A resourceType for a gap reason: a plain FHIR type name, never arbitrary text from the request."""
    if isinstance(resource_type, str) and resource_type.isalpha() and len(resource_type) <= 40:
        return f"resource of type {resource_type}"
    return "resource of unknown type"


def _run_parallel(tasks: Mapping[str, tuple[PrefetchKey, Callable[[], KeyResult]]]) -> dict[str, KeyResult]:
    if len(tasks) == 1:
        ((name, (key, task)),) = tasks.items()
        return {name: _guarded(key, task)}
    # One thread per missing key (at most the service's declared keys, len(PREFETCH)): a call without
    # prefetch costs one FHIR round trip, not one per batch of keys.
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = {name: pool.submit(_guarded, key, task) for name, (key, task) in tasks.items()}
        return {name: f.result() for name, f in futures.items()}


def _guarded(key: PrefetchKey, task: Callable[[], KeyResult]) -> KeyResult:
    """Run a fetch task; an unexpected exception becomes a gap (logged without data), never a crash."""
    try:
        return task()
    except Exception as exc:
        log.error("prefetch key %s failed unexpectedly: %s", key.key, type(exc).__name__)
        return KeyResult(key, "gap", obtained=False, gap="the data could not be read (internal error)")


def _resolve_medication_references(
    resources: list[Mapping[str, Any]], client: FhirClient | None, refusal: str | None
) -> str | None:
    """Fetch ``Medication/<id>`` resources referenced but neither contained nor included.

    Appends what it finds to ``resources``; returns a gap reason when some could not be resolved.
    """
    have: set[Any] = set()
    users: list[Mapping[str, Any]] = []
    for r in resources:
        rtype = r.get("resourceType")
        if rtype == "Medication":
            have.add(r.get("id"))
        elif rtype in _MEDICATION_USERS:
            users.append(r)
    wanted_ids: dict[str, None] = {}  # insertion-ordered set
    ids: dict[str, str | None] = {}  # reference -> Medication id: many resources name the same few
    for r in users:
        ref = r.get("medicationReference")
        target = ref.get("reference") if is_mapping(ref) else None
        if not isinstance(target, str) or target.startswith("#"):
            continue
        med_id = ids[target] if target in ids else ids.setdefault(target, _medication_id(target, client))
        if med_id and med_id not in have:
            wanted_ids[med_id] = None
    wanted = list(wanted_ids)
    if not wanted:
        return None
    if client is None:
        return f"{len(wanted)} referenced Medication resource(s) could not be read: {refusal}"
    missing = 0
    for start in range(0, len(wanted), MEDICATION_BATCH):
        batch = wanted[start : start + MEDICATION_BATCH]
        try:
            result = client.search(f"Medication?_id={','.join(batch)}&_count={len(batch)}", follow_pages=True)
        except FetchError:
            missing += len(batch)
            continue
        found = [m for m in result.resources if m.get("resourceType") == "Medication"]
        resources.extend(found)
        missing += len(set(batch) - {m.get("id") for m in found})
    if missing:
        return f"{missing} referenced Medication resource(s) could not be read from the FHIR server"
    return None


def _medication_id(reference: str, client: FhirClient | None) -> str | None:
    if reference.startswith("Medication/"):
        med_id = reference.removeprefix("Medication/").split("/")[0]
    elif client is not None and same_server(reference, client.base_url) and "/Medication/" in reference:
        med_id = reference.rsplit("/Medication/", 1)[1].split("/")[0]
    else:
        return None
    return med_id if med_id and all(c.isalnum() or c in "-." for c in med_id) and len(med_id) <= 64 else None
