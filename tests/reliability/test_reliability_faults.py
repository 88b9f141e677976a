"""Fault injection against the FHIR fallback fetch, with a real misbehaving server on loopback.

Each fault must give a bounded-time answer (412 naming the data, or cards naming the gap) and leave the
worker able to serve the next request. The time bound is generous: it proves "no hang", not speed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from faulty_fhir import FaultyFhirServer, faulty_fhir_server, refused_base_url
from flask import Flask
from requests_for_tests import KETAMINE_DRAFT, order_sign

from cds_service.config import Settings
from cds_service.web.app import create_app

READ_TIMEOUT = 1.0
NO_HANG_SECONDS = 20.0


@pytest.fixture
def server() -> Iterator[FaultyFhirServer]:
    with faulty_fhir_server() as s:
        yield s


def _app(kb: object, allow: str) -> Flask:
    settings = Settings(
        auth_enabled=False,
        fhir_server_allowlist=(allow,),
        fhir_connect_timeout=0.5,
        fhir_read_timeout=READ_TIMEOUT,
        fhir_max_pages=3,
        fhir_max_response_bytes=2 * 1024 * 1024,
        database_url="sqlite://",
    )
    return create_app(settings, kb=kb)


def _post(app: Flask, body: dict[str, object]) -> tuple[int, dict[str, object], float]:
    start = time.monotonic()
    response = app.test_client().post("/cds-services/ketamine-order-sign", json=body)
    return response.status_code, response.get_json(), time.monotonic() - start


def _assert_explained(status: int, payload: dict[str, object]) -> None:
    """412 with an OperationOutcome, or 200 whose cards say data is missing."""
    if status == 412:
        assert payload["resourceType"] == "OperationOutcome"
        assert payload["issue"], "412 must name the data that could not be obtained"
        return
    assert status == 200, (status, payload)
    cards = payload["cards"]
    assert isinstance(cards, list) and cards, "a ketamine order must never get an empty card list"
    text = " ".join(str(c.get("detail", "")) + str(c.get("summary", "")) for c in cards).lower()
    assert "could not" in text or "not obtained" in text or "unavailable" in text or "missing" in text


@pytest.mark.parametrize(
    "mode",
    [
        "read-timeout",
        "slow-drip",
        "status-401",
        "status-403",
        "status-404",
        "status-429",
        "status-500",
        "not-json",
        "looping-next",
        "huge",
    ],
)
def test_fault_gives_bounded_explained_answer_and_worker_survives(kb, server: FaultyFhirServer, mode: str) -> None:
    app = _app(kb, server.base_url)
    server.mode = mode
    status, payload, seconds = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert seconds < NO_HANG_SECONDS, f"{mode}: answer took {seconds:.1f}s"
    assert status != 500
    _assert_explained(status, payload)

    server.mode = "ok"
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert status == 200, payload
    assert payload["cards"], "the worker must still evaluate the next request"


def test_looping_next_links_stop_at_the_page_cap(kb, server: FaultyFhirServer) -> None:
    app = _app(kb, server.base_url)
    server.mode = "looping-next"
    _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    # 9 prefetch keys, each may read its first page plus at most fhir_max_pages follow-ups.
    assert server.requests_seen <= 9 * (1 + 3) + 5


def test_connection_refused_is_412(kb) -> None:
    base = refused_base_url()
    app = _app(kb, base)
    status, payload, seconds = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=base))
    assert seconds < NO_HANG_SECONDS
    assert status == 412
    assert payload["resourceType"] == "OperationOutcome"


def test_server_not_on_allowlist_is_never_contacted(kb, server: FaultyFhirServer) -> None:
    app = _app(kb, "https://fhir.hospital.example/")
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert server.requests_seen == 0
    assert status in (400, 412)
    assert payload["resourceType"] == "OperationOutcome"
