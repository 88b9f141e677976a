"""The seam: every call from replay into the service goes through this module, and only this one.

Replay gives the service exactly what an EHR would: a CDS Hooks request for the service of ``--hook`` with
its draft order in ``context.draftOrders``, and the patient's exported resources as the source of its
prefetch (``hooks.gather.PatientExport``): every template of the service answered by the in-memory FHIR
search (``fhir.memory``: codes, categories, ``_sort``, ``_count``, ``_include``) over what was known at the
order's instant. The one pipeline (``hooks.pipeline.run``) then does what it does for the web app, as of
that instant: validation, the scan of what the service evaluates, the prefetch, the record, the rule set, the
cards. There is no second copy of any step, and no HTTP, authentication or FHIR fallback.

The pipeline runs with its default observer, the silent one: a card nobody was shown never reaches
``/metrics``, the request log or the feedback store's override report. The settings that change an answer
are the service's own: the environment's ``KETAMINE_CDS_LOCAL_TIMEZONE`` (dates without an offset) and
``KETAMINE_CDS_MAX_JSON_DEPTH``.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from cds_service.config import Settings
from cds_service.fhir.asof import as_of
from cds_service.hooks import pipeline
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import SERVICES, ServiceDefinition
from cds_service.hooks.errors import HookError
from cds_service.hooks.gather import PatientExport
from cds_service.hooks.subjects import draft_context
from cds_service.knowledge.model import Knowledge
from cds_service.order.recognition import find_ketamine_requests
from cds_service.record.builder import build_record
from cds_service.rules.findings import CheckStatus
from cds_service.sandbox.requests import latest_weight_kg, materialize_order

log = logging.getLogger(__name__)

REPLAY_USER: Final = "Practitioner/ketamine-cds-replay"
# Card links are made from this base; it is never fetched and never leaves the replay.
CARD_BASE_URL: Final = "https://ketamine-cds.replay.invalid"
_NS: Final = uuid.UUID("0d5e3f62-6f0c-4c55-9d1e-5b2a7f3c9e41")
# Value sets whose active conditions make "an active depressive disorder" (--cohort depression)
DEPRESSION_VALUESETS: Final = ("depression", "bipolar-depression")


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What the service said about one order, reduced to what replay counts (no card text, no patient data)."""

    status: int  # 200, or the HTTP status the service would have answered instead of cards
    cards: tuple[tuple[str, str], ...] = ()  # (topic code, indicator) of every card, in the service's order
    not_documented: tuple[str, ...] = ()  # checklist criteria with status "not documented"
    not_obtained: tuple[str, ...] = ()  # data-gap keys: data the service asked for and could not use
    skipped: tuple[str, ...] = ()  # resource types set aside as invalid by the record builder
    left_out: int = 0  # resources left out of the record as dated after the instant


def service_for(hook: str) -> ServiceDefinition[Any]:
    for service in SERVICES.values():
        if service.hook == hook:
            return service
    raise ValueError(f"no service answers hook {hook!r}")


def read_types(hook: str) -> frozenset[str]:
    """The resource types the service's prefetch asks for (and Medication, which they ``_include``)."""
    types = {key.resource_type for key in service_for(hook).prefetch}
    return frozenset(types | {"Medication"})


class ReplayService:
    """The service of one hook with one knowledge base, called in-process and silently.

    ``settings``: the service's (default ``Settings.from_env()``: ``ConfigError`` names a malformed variable),
    with authentication and the FHIR fallback off.
    """

    def __init__(self, kb: Knowledge, hook: str, settings: Settings | None = None) -> None:
        self.kb = kb
        self.service = service_for(hook)
        self.settings = dataclasses.replace(
            settings or Settings.from_env(), auth_enabled=False, fhir_server_allowlist=()
        )
        missing = [key for key in DEPRESSION_VALUESETS if key not in kb.valuesets]
        if missing:
            raise ValueError(f"the knowledge base has no value set {', '.join(missing)} for --cohort depression")

    @property
    def zone(self) -> tzinfo:
        """Where a dateTime without an offset is read (``KETAMINE_CDS_LOCAL_TIMEZONE``)."""
        return self.settings.local_zone

    # ------------------------------------------------------------------ what to replay

    def ketamine_orders(
        self, requests: Sequence[Mapping[str, Any]], medications: Iterable[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """The ketamine and esketamine MedicationRequests among ``requests``: the service's own order scan
        (``medicationReference`` resolved against ``medications``)."""
        entries = [{"resource": r} for r in (*requests, *medications)]
        return find_ketamine_requests({"resourceType": "Bundle", "type": "collection", "entry": entries}, None, self.kb)

    def in_depression_cohort(self, resources: Iterable[Mapping[str, Any]]) -> bool:
        """An active depressive disorder, recognised by the service's record builder (codes, names, status)."""
        conditions = [r for r in resources if r.get("resourceType") == "Condition"]
        record = build_record(conditions, self.kb, available=frozenset(), zone=self.zone)
        return any(record.conditions_in(key) for key in DEPRESSION_VALUESETS)

    def template_order(
        self,
        template: Mapping[str, Any],
        *,
        patient_id: str,
        now: datetime,
        resources: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The draft order of ``template`` for this patient (the sandbox's generator) and notes on how it was made.

        A template that sizes the dose by weight (``mg_per_kg``) is written in mg/kg, as prescribed, for a
        patient with no weight on record (note ``dose-per-kg-no-weight``): no weight is invented.
        """
        weight = latest_weight_kg([dict(r) for r in resources])
        parameters = template.get("parameters") or {}
        params: dict[str, Any] = {}
        notes: tuple[str, ...] = ()
        if weight is None and "mg_per_kg" in parameters and not {"dose_mg", "dose_mg_per_kg"} & set(parameters):
            params, notes = {"dose_mg_per_kg": parameters["mg_per_kg"]}, ("dose-per-kg-no-weight",)
        order = materialize_order(
            template,
            patient_ref=f"Patient/{patient_id}",
            order_id=str(uuid.uuid5(_NS, f"{patient_id}/order")),
            authored_on=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            params=params,
            weight_kg=weight,
        )
        return order, notes

    # ------------------------------------------------------------------ the service's answer

    def request(
        self,
        resources: Sequence[Mapping[str, Any]],
        order: Mapping[str, Any],
        *,
        patient_id: str,
        medications: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The CDS Hooks request an EHR would send: ``order`` as the draft, every prefetch key answered from
        ``resources`` by the service's own templates. ``medications`` go with the draft order (for a
        ``medicationReference``)."""
        body = self._envelope(order, patient_id=patient_id, medications=medications)
        return {**body, "prefetch": PatientExport(resources).prefetch(self.service.prefetch, body["context"])}

    def evaluate(
        self,
        resources: Sequence[Mapping[str, Any]],
        order: Mapping[str, Any],
        *,
        patient_id: str,
        now: datetime,
        medications: Sequence[Mapping[str, Any]] = (),
        known_at: datetime | None = None,
    ) -> OrderOutcome:
        """What the service answers for ``order`` at ``now``, the record holding ``resources`` as they stood at
        ``known_at`` (None: all of them)."""
        try:
            body = self._envelope(order, patient_id=patient_id, medications=medications)
            # every value came from a JSON decoder or is JSON-typed: the schema check may take its fast path
            request = HookBody(body, from_json=True)
            answer = pipeline.run(
                self.service,
                request,
                kb=self.kb,
                settings=self.settings,
                now=now,
                base_url=CARD_BASE_URL,
                source=PatientExport(resources),
                as_of=known_at,
            )
        except HookError as exc:
            return OrderOutcome(exc.status, left_out=self._left_out(resources, known_at))
        except Exception as exc:  # the web app's edge answers 500 here: count it, never stop the run
            log.error("replay: the service failed on an order: %s", type(exc).__name__)
            return OrderOutcome(500, left_out=self._left_out(resources, known_at))
        record, verdicts = answer.gathered.record, answer.decision.verdicts
        not_documented = [
            check.criterion
            for verdict in verdicts
            for check in verdict.evaluation.checks
            if check.status is CheckStatus.UNDOCUMENTED
        ]
        return OrderOutcome(
            status=200,
            cards=tuple((card.topic or "", card.indicator) for card in answer.decision.cards),
            not_documented=tuple(dict.fromkeys(not_documented)),
            not_obtained=tuple(dict.fromkeys(gap.key for gap in record.data_gaps)) if record else (),
            skipped=tuple(dict.fromkeys(s.resource_type for s in record.skipped)) if record else (),
            left_out=answer.gathered.left_out,
        )

    def _envelope(
        self, order: Mapping[str, Any], *, patient_id: str, medications: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The request without its prefetch."""
        entries = [{"resource": order}, *({"resource": m} for m in medications)]
        draft = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        context: dict[str, Any] = {
            "userId": REPLAY_USER,
            "patientId": patient_id,
            **draft_context(self.service.subjects, draft, [f"MedicationRequest/{order.get('id')}"]),
        }
        return {
            "hook": self.service.hook,
            "hookInstance": str(uuid.uuid5(_NS, f"{patient_id}/{order.get('id')}/{order.get('authoredOn')}")),
            "context": context,
        }

    def _left_out(self, resources: Sequence[Mapping[str, Any]], known_at: datetime | None) -> int:
        """How many resources the record leaves out as dated after ``known_at`` (for a call that failed)."""
        return 0 if known_at is None else len(resources) - len(as_of(resources, known_at, self.zone))
