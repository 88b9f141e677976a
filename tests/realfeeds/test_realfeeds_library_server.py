"""Every fixture of the library, loaded into a real FHIR server with ``ketamine-cds fixtures load``, through the
HTTP API without any prefetch: the service finds what it needs with its own queries, and the cards match the
manifest. (The manifest test answers the same queries from a mock; this one from a server that honours the
search parameters, so a query that misses data on a real server fails here.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest
from cds_service.sandbox.requests import HOOKS, build_request, load_template, service_id
from tests.clock import NOW
from tests.realfeeds.fhir_server import FhirServer
from tests.sandbox.sandbox_support import card_mismatch, card_pairs

MANIFEST = load_manifest()


def no_prefetch_request(name: str, hook: str, server: FhirServer, patient_id: str) -> dict[str, Any]:
    """The fixture's request with no prefetch at all, for the Patient the server assigned."""
    entry = MANIFEST.get(name)
    body = build_request(
        MANIFEST.bundle(entry), load_template(entry.order_template), hook, anchor=MANIFEST.anchor,
        params=entry.order_params, prefetch=False, fhir_server=server.base_url, name=name,
    )  # fmt: skip
    body = roller.roll(body, NOW)
    body["hookInstance"] = str(uuid.uuid4())
    body["context"]["patientId"] = patient_id
    for item in body["context"].get("draftOrders", {}).get("entry", ()):  # patient-view has none
        item["resource"]["subject"] = {"reference": f"Patient/{patient_id}"}
    return body


def test_every_fixture_was_loaded(library_ids: dict[str, str]) -> None:
    assert sorted(library_ids) == sorted(e.name for e in MANIFEST.entries)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_fixture_without_prefetch_from_a_real_server_matches_the_manifest(
    client: FlaskClient, fhir_server: FhirServer, library_ids: dict[str, str], hook: str
) -> None:
    problems = []
    for entry in MANIFEST.entries:
        body = no_prefetch_request(entry.name, hook, fhir_server, library_ids[entry.name])
        resp = client.post(f"/cds-services/{service_id(hook)}", json=body)
        if resp.status_code != 200:
            problems.append(f"{entry.name}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]}")
            continue
        expected = [c.as_tuple() for c in entry.expected_for(hook)]
        mismatch = card_mismatch(card_pairs(resp.get_json()), expected)
        if mismatch:
            problems.append(f"{entry.name}: {mismatch}")
    assert not problems, "\n".join(problems)


def test_the_patient_view_cards_the_manifest_states_from_a_real_server(
    client: FlaskClient, fhir_server: FhirServer, library_ids: dict[str, str]
) -> None:
    """patient-view's own queries (the Procedure search for ECT included) find what the cards need on a server
    that honours the search parameters."""
    problems = []
    stated = [entry for entry in MANIFEST.entries if entry.expected_patient_view is not None]
    assert len(stated) >= 30
    for entry in stated:
        body = no_prefetch_request(entry.name, "patient-view", fhir_server, library_ids[entry.name])
        resp = client.post(f"/cds-services/{service_id('patient-view')}", json=body)
        if resp.status_code != 200:
            problems.append(f"{entry.name}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]}")
            continue
        mismatch = card_mismatch(
            card_pairs(resp.get_json()), [c.as_tuple() for c in entry.expected_for("patient-view")]
        )
        if mismatch:
            problems.append(f"{entry.name}: {mismatch}")
    assert not problems, "\n".join(problems)
