"""The gather stage: from a hook request to the patient's record, as of an instant.

In order: the request is validated for the service (schema, then what its subjects ask of the context); what
the service evaluates is found (a code-set scan of the draft orders, or the patient); with nothing to evaluate
the stage ends there and the prefetch is never decoded. Otherwise the prefetch is resolved key by key (the
request's members, or the FHIR fallback for those it lacks), a required key that cannot be obtained is a 412,
resources dated after the ``as_of`` instant are left out, and the record is built.

Where the prefetch comes from is the ``source``: the request itself (``RequestPrefetch``: the web app, the
sandbox, tests) or a patient's exported resources (``PatientExport``: replay), whose searches an in-memory
FHIR server answers. The export source leaves out what was dated after the instant *before* it answers the
templates, as the EHR would have done at that instant: a latest-value search (``_sort=-date&_count=20``)
then returns the newest readings up to the instant, not the newest of all.

A service with a ``screen`` has its screen keys read first and the record built from them; when the screen
says no, the stage ends with nothing to evaluate and no other key is read or fetched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Protocol

import requests

from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.asof import as_of as known_at
from cds_service.fhir.memory import MemoryServer
from cds_service.fhir.prefetch import PrefetchKey, PrefetchResolution, ResolutionObserver, resolve_prefetch
from cds_service.fhir.templates import TemplateError, fill
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import ServiceDefinition
from cds_service.hooks.context import validate_request
from cds_service.hooks.errors import HookError, Issue
from cds_service.hooks.observer import SILENT, Observer
from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import PatientRecord

# The base URL of the in-memory server that answers an export's searches: never fetched, never shown.
EXPORT_BASE_URL: Final = "https://fhir.export.invalid/r4"
_NO_SERVERS: Final = ServerAllowlist(())


@dataclass(frozen=True)
class Gathered:
    """What the decide stage needs: the validated envelope, what there is to evaluate and the record.

    ``found`` is empty when there is nothing to evaluate (then ``record`` is None, or the screen's partial
    record when the screen ended the call); ``left_out`` counts the resources dated after the as-of instant.
    """

    envelope: Mapping[str, Any]
    found: tuple[object, ...] = ()
    record: PatientRecord | None = None
    left_out: int = 0

    @property
    def context(self) -> Mapping[str, Any]:
        context: Mapping[str, Any] = self.envelope["context"]
        return context

    @property
    def hook_instance(self) -> str:
        return str(self.envelope["hookInstance"])

    @property
    def patient_id(self) -> str:
        return str(self.context["patientId"])


class PrefetchSource(Protocol):
    """Where the prefetch of a call comes from."""

    def at(self, instant: datetime, zone: tzinfo) -> tuple[PrefetchSource, int]:
        """This source as it stood at ``instant`` (dateTimes without an offset read in ``zone``), and how many
        resources that has left out already."""
        ...

    def resolve(
        self,
        keys: Sequence[PrefetchKey],
        envelope: Mapping[str, Any],
        *,
        settings: Settings,
        now: datetime,
        observer: ResolutionObserver,
    ) -> tuple[PrefetchResolution, int]:
        """The resolution of ``keys``, and how many of the resources read were left out as dated later."""
        ...


@dataclass(frozen=True)
class RequestPrefetch:
    """The request's own prefetch members, and the FHIR fallback (``fhirServer``, if allowlisted) for the keys it
    lacks. As of an instant, what was dated later is left out once it is read (the EHR answered at the call)."""

    request: HookBody
    allowlist: ServerAllowlist
    session: requests.Session | None = None
    as_of: datetime | None = None
    zone: tzinfo = UTC

    def at(self, instant: datetime, zone: tzinfo) -> tuple[RequestPrefetch, int]:
        return dataclasses.replace(self, as_of=instant, zone=zone), 0

    def resolve(
        self,
        keys: Sequence[PrefetchKey],
        envelope: Mapping[str, Any],
        *,
        settings: Settings,
        now: datetime,
        observer: ResolutionObserver,
    ) -> tuple[PrefetchResolution, int]:
        body = with_prefetch(self.request, keys, settings.max_json_depth)
        resolution = resolve_prefetch(
            keys, body, settings=settings, allowlist=self.allowlist, session=self.session, observer=observer, now=now
        )
        if self.as_of is None:
            return resolution, 0
        known = tuple(known_at(resolution.resources, self.as_of, self.zone))
        return dataclasses.replace(resolution, resources=known), len(resolution.resources) - len(known)


@dataclass(frozen=True)
class PatientExport:
    """A patient's exported resources (replay): each template is answered by the in-memory FHIR server. As of
    an instant, the export is cut down *before* the templates are answered, as the EHR would have answered
    them then."""

    resources: Sequence[Mapping[str, Any]]

    def at(self, instant: datetime, zone: tzinfo) -> tuple[PatientExport, int]:
        known = known_at(self.resources, instant, zone)
        return PatientExport(known), len(self.resources) - len(known)

    def resolve(
        self,
        keys: Sequence[PrefetchKey],
        envelope: Mapping[str, Any],
        *,
        settings: Settings,
        now: datetime,
        observer: ResolutionObserver,
    ) -> tuple[PrefetchResolution, int]:
        answered = HookBody(dict(envelope), self.prefetch(keys, envelope["context"]), from_json=True)
        body = answered.with_prefetch({key.key for key in keys}, settings.max_json_depth)  # as deep as a request's
        return resolve_prefetch(keys, body, settings=settings, allowlist=_NO_SERVERS, observer=observer, now=now), 0

    def prefetch(self, keys: Sequence[PrefetchKey], context: Mapping[str, Any]) -> dict[str, Any]:
        """Each key's template answered from the resources (a template that cannot be filled is left out)."""
        server = MemoryServer(self.resources, EXPORT_BASE_URL, copies=False)  # the pipeline never changes its input
        answered: dict[str, Any] = {}
        for key in keys:
            try:
                answered[key.key] = server.query(fill(key.template, context)).body
            except TemplateError:
                continue
        return answered


def checked_envelope(service: ServiceDefinition[Any], request: HookBody) -> Mapping[str, Any]:
    """The request's envelope (every member but the prefetch) once the request is valid for ``service``
    (``HookError`` 400 otherwise); no prefetch member is decoded for the check."""
    validate_request(service, request.schema_view(), parsed_json=request.from_json)
    envelope: Mapping[str, Any] = request.envelope
    return envelope


def with_prefetch(request: HookBody, keys: Sequence[PrefetchKey], max_depth: int) -> Mapping[str, Any]:
    """The request with the prefetch members of ``keys`` decoded (the vital-sign searches only as far as the
    record reads them); ``HookError`` 400 when the prefetch nests deeper than ``max_depth``."""
    return request.with_prefetch({key.key for key in keys}, max_depth, capped_keys(keys))


def capped_keys(keys: Sequence[PrefetchKey]) -> frozenset[str]:
    """The keys of vital-sign searches, of which the record reads only the newest readings: their Observations
    are decoded only as far as the record reads them (``fhir/capped_search.py``)."""
    return frozenset(key.key for key in keys if key.kind in kinds.CAPPED)


def gather(
    service: ServiceDefinition[Any],
    request: HookBody,
    *,
    kb: Knowledge,
    settings: Settings,
    now: datetime,
    source: PrefetchSource | None = None,
    as_of: datetime | None = None,
    observer: Observer = SILENT,
) -> Gathered:
    """Validate ``request`` for ``service``, find what it evaluates, and build the record as of ``as_of`` (None:
    everything the prefetch holds). ``source``: default the request's own prefetch, with no FHIR server allowed.

    ``HookError`` 400 for an invalid request (or a prefetch nested too deep), 412 for required data that
    cannot be obtained.
    """
    envelope = checked_envelope(service, request)
    observer.call(service.id, service.hook, str(envelope["hookInstance"]))
    context: Mapping[str, Any] = envelope["context"]
    found = service.subjects.find(context, kb)
    if not found:
        observer.note(service.subjects.nothing)
        return Gathered(envelope)
    origin: PrefetchSource = source or RequestPrefetch(request, _NO_SERVERS)
    earlier = 0
    if as_of is not None:
        origin, earlier = origin.at(as_of, settings.local_zone)

    def read(keys: Sequence[PrefetchKey]) -> tuple[PrefetchResolution, int]:
        resolution, left_out = origin.resolve(keys, envelope, settings=settings, now=now, observer=observer)
        _require(resolution, observer)
        return resolution, left_out

    def record_of(resolution: PrefetchResolution) -> PatientRecord:
        with observer.phase("record"):
            return build_record(
                resolution.resources,
                kb,
                available=resolution.available,
                gaps=resolution.gaps,
                patient_id=str(context["patientId"]),
                now=now,
                zone=settings.local_zone,
            )

    keys = service.prefetch
    screen = service.screen
    if screen is None:
        resolution, left_out = read(keys)
        return Gathered(envelope, found, record_of(resolution), earlier + left_out)
    first, first_left_out = read([key for key in keys if key.key in screen.keys])
    screened = record_of(first)
    if not screen.go_on(screened, kb, now):
        observer.note(screen.note)
        return Gathered(envelope, (), screened, earlier + first_left_out)
    rest, rest_left_out = read([key for key in keys if key.key not in screen.keys])
    return Gathered(envelope, found, record_of(first.merged(rest)), earlier + first_left_out + rest_left_out)


def _require(resolution: PrefetchResolution, observer: Observer) -> None:
    """412 naming every required key that could not be obtained."""
    if not resolution.unobtainable_required:
        return
    observer.note("412: " + ", ".join(g.key for g in resolution.unobtainable_required) + " unobtainable")
    raise HookError(
        412,
        [
            Issue(
                f"Required data {gap.key!r} could not be obtained: {gap.reason}",
                code="incomplete",
                expression=f"prefetch.{gap.key}",
            )
            for gap in resolution.unobtainable_required
        ],
    )
