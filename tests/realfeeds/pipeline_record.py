"""The patient record the pipeline builds for a hook request, at the test clock (for record-level assertions)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from cds_service.config import Settings
from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.prefetch import PrefetchResolution, resolve_prefetch
from cds_service.hooks.catalog import SERVICES
from cds_service.knowledge.model import Knowledge
from cds_service.record.builder import build_record
from cds_service.record.model import PatientRecord
from tests.clock import NOW


def record_for(body: dict[str, Any], kb: Knowledge, settings: Settings) -> tuple[PatientRecord, PrefetchResolution]:
    """The prefetch resolved (fetching what is missing from the allowlisted server) and the record built from it,
    as ``hooks.pipeline.handle_hook_call`` does."""
    resolution = resolve_prefetch(
        SERVICES["ketamine-order-sign"].prefetch, body, settings=settings,
        allowlist=ServerAllowlist(settings.fhir_server_allowlist), now=NOW,
    )  # fmt: skip
    record = build_record(
        resolution.resources, kb, available=resolution.available, gaps=resolution.gaps,
        patient_id=body["context"]["patientId"], now=NOW, zone=UTC,
    )  # fmt: skip
    return record, resolution
