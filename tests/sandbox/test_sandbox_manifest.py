"""Every fixture through the HTTP API, with full prefetch and with none (FHIR mock), against the manifest.

The manifest is the single source of truth for the expected cards. Fixtures are rolled to the fixed test
clock, and the app's clock is pinned to the same instant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_service.config import Settings
from cds_service.fhir.memory import MemoryServer, resources_from_bundle
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest
from cds_service.sandbox.requests import HOOKS, build_request, latest_weight_kg, load_template, service_id
from tests.clock import NOW
from tests.sandbox.sandbox_support import (
    FHIR_BASE,
    card_contract_problems,
    card_mismatch,
    card_pairs,
    fhir_mock,
    frozen_datetime,
)

MANIFEST = load_manifest()
CASES = [
    pytest.param(entry.name, hook, mode, id=f"{entry.name}-{hook}-{mode}")
    for entry in MANIFEST.entries
    for hook in HOOKS
    for mode in ("prefetch", "fhir-server")
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    from cds_service.web import app as web_app

    db = tmp_path_factory.mktemp("sandbox") / "feedback.sqlite3"
    settings = Settings(auth_enabled=False, fhir_server_allowlist=(FHIR_BASE,), database_url=f"sqlite:///{db}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(web_app, "datetime", frozen_datetime(NOW))  # the service's clock = the fixtures' clock
        yield web_app.create_app(settings).test_client()


def _request(name: str, hook: str, prefetch: bool) -> tuple[dict[str, Any], MemoryServer]:
    entry = MANIFEST.get(name)
    bundle = MANIFEST.bundle(entry)
    body = build_request(
        bundle,
        load_template(entry.order_template),
        hook,
        anchor=MANIFEST.anchor,
        params=entry.order_params,
        prefetch=prefetch,
        fhir_server=FHIR_BASE,
        name=entry.name,
    )
    body = roller.roll(body, NOW)
    body["hookInstance"] = str(uuid.uuid4())
    server = MemoryServer(resources_from_bundle(roller.roll(bundle, NOW, anchor=MANIFEST.anchor)), FHIR_BASE)
    return body, server


@pytest.mark.parametrize(("name", "hook", "mode"), CASES)
def test_fixture_cards_match_manifest(client: FlaskClient, name: str, hook: str, mode: str) -> None:
    entry = MANIFEST.get(name)
    body, server = _request(name, hook, prefetch=mode == "prefetch")
    with fhir_mock(server) as mock:
        resp = client.post(f"/cds-services/{service_id(hook)}", json=body)
        fhir_calls = len(mock.calls)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:2000]
    expected = [c.as_tuple() for c in entry.expected_for(hook)]
    actual = card_pairs(resp.get_json())
    problem = card_mismatch(actual, expected)
    assert problem is None, f"{name} ({hook}, {mode}): {problem}\n  story: {entry.story}"
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    weight = latest_weight_kg(server.resources)
    for card in resp.get_json()["cards"]:
        broken = card_contract_problems(card, f"MedicationRequest/{draft['id']}", weight)
        assert not broken, f"{name} ({hook}, {mode}) card {card_pairs({'cards': [card]})}: {broken}"
    if mode == "prefetch":
        assert fhir_calls == 0, "with every prefetch key supplied the service should not call the FHIR server"
    elif expected:
        assert fhir_calls > 0, "without prefetch the service must read the patient from the FHIR server"
