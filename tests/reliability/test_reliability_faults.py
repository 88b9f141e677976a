"""Fault injection against the FHIR fallback fetch, with a real misbehaving server on loopback.

Each fault, on a required key (conditions) and on an optional one (administrations), must give a
bounded-time answer that names the key and the reason (412 for the required key, a gap line on the
eligibility summary card for the optional one) and leave the worker able to serve the next request.
The time bound is generous: it proves "no hang", not speed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from cds_service.config import Settings
from cds_service.fhir.client import DEADLINE_REASON
from cds_service.web.app import create_app
from tests.reliability.faulty_fhir import FaultyFhirServer, faulty_fhir_server, refused_base_url
from tests.reliability.requests_for_tests import KETAMINE_DRAFT, order_sign

READ_TIMEOUT = 2.0  # the slow drip sends a byte every 0.25 s: only the overall deadline can stop it
MAX_PAGES = 3
NO_HANG_SECONDS = 20.0


@pytest.fixture
def server() -> Iterator[FaultyFhirServer]:
    with faulty_fhir_server() as s:
        yield s


def _app(kb: object, allow: str) -> Flask:
    settings = Settings(
        auth_enabled=False,
        fhir_server_allowlist=(allow,),
        fhir_connect_timeout=2.0,
        fhir_read_timeout=READ_TIMEOUT,
        fhir_max_pages=MAX_PAGES,
        fhir_max_response_bytes=2 * 1024 * 1024,
        database_url="sqlite://",
    )
    return create_app(settings, kb=kb)


def _post(app: Flask, body: dict[str, object]) -> tuple[int, dict[str, object], float]:
    start = time.monotonic()
    response = app.test_client().post("/cds-services/ketamine-order-sign", json=body)
    return response.status_code, response.get_json(), time.monotonic() - start


_GAP_LINE = re.compile(r"^- (.+) records could not be obtained: (.+)$", re.M)


def _summary_gaps(payload: dict[str, object]) -> list[str]:
    """The "... records could not be obtained: <reason>" lines of the eligibility summary card."""
    cards = payload["cards"]
    assert isinstance(cards, list) and cards, "a ketamine order must never get an empty card list"
    summary = cards[0]
    assert summary["source"]["topic"]["code"] == "eligibility-summary"
    found = [f"{what}: {why}" for what, why in _GAP_LINE.findall(summary["detail"])]
    assert found, summary["detail"]
    return found


def _assert_412_names(payload: dict[str, object], key: str, reason: str) -> None:
    assert payload["resourceType"] == "OperationOutcome"
    issues = payload["issue"]
    assert isinstance(issues, list)
    named = [i for i in issues if i.get("expression") == [f"prefetch.{key}"]]
    assert named, f"412 must name prefetch.{key}: {issues}"
    assert reason in named[0]["diagnostics"], named[0]["diagnostics"]


# fault mode -> the reason the service must give: each reason is raised by one mechanism only, so it
# also proves what stopped the read (HTTP status, read timeout, overall deadline, size cap, parser).
FAULTS = {
    "read-timeout": "the FHIR server did not answer in time",
    "slow-drip": DEADLINE_REASON,
    "status-401": "the FHIR server answered HTTP 401",
    "status-403": "the FHIR server answered HTTP 403",
    "status-404": "the FHIR server answered HTTP 404",
    "status-429": "the FHIR server answered HTTP 429",
    "status-500": "the FHIR server answered HTTP 500",
    "not-json": "the FHIR server's answer was not JSON",
    "huge": "the FHIR server's answer was larger than the configured cap",
    "huge-chunked": "the FHIR server's answer was larger than the configured cap",
}


def _assert_worker_healthy(app: Flask, server: FaultyFhirServer) -> None:
    server.mode, server.fault_path = "ok", None
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert status == 200, payload
    assert payload["cards"] and not _GAP_LINE.search(payload["cards"][0]["detail"])


@pytest.mark.parametrize("mode", list(FAULTS))
def test_fault_on_required_key_is_412_naming_it_and_worker_survives(
    kb, server: FaultyFhirServer, mode: str
) -> None:
    app = _app(kb, server.base_url)
    server.mode, server.fault_path = mode, "/Condition"
    status, payload, seconds = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert seconds < NO_HANG_SECONDS, f"{mode}: answer took {seconds:.1f}s"
    assert status == 412, payload
    _assert_412_names(payload, "conditions", FAULTS[mode])
    assert len(payload["issue"]) == 1, "only the failing key is named"
    _assert_worker_healthy(app, server)


@pytest.mark.parametrize("mode", list(FAULTS))
def test_fault_on_optional_key_is_a_gap_named_on_the_summary_card(kb, server: FaultyFhirServer, mode: str) -> None:
    app = _app(kb, server.base_url)
    server.mode, server.fault_path = mode, "/MedicationAdministration"
    status, payload, seconds = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert seconds < NO_HANG_SECONDS, f"{mode}: answer took {seconds:.1f}s"
    assert status == 200, payload
    assert _summary_gaps(payload) == [f"Ketamine or esketamine administration: {FAULTS[mode]}"]
    _assert_worker_healthy(app, server)


def test_next_links_that_cycle_are_cut_at_the_first_repeat(kb, server: FaultyFhirServer) -> None:
    app = _app(kb, server.base_url)
    server.mode, server.fault_path = "looping-next", "/Condition"
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert status == 200, payload
    assert server.hits("/Condition") == 2  # the first page, and its "next" (itself) once: then the cycle is seen
    assert _summary_gaps(payload) == [
        "Condition: the FHIR server's paging looped; only the pages before the loop were read"
    ]
    _assert_worker_healthy(app, server)


def test_endless_next_links_stop_at_the_page_cap(kb, server: FaultyFhirServer) -> None:
    app = _app(kb, server.base_url)
    server.mode, server.fault_path = "endless-next", "/Condition"
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert status == 200, payload
    assert server.hits("/Condition") == MAX_PAGES
    assert _summary_gaps(payload) == [f"Condition: only the first {MAX_PAGES} pages of results were read"]
    _assert_worker_healthy(app, server)


def test_every_key_failing_at_once_is_412_naming_each_required_key(kb, server: FaultyFhirServer) -> None:
    app = _app(kb, server.base_url)
    server.mode = "status-500"
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert status == 412
    for key in ("patient", "conditions", "medicationRequests"):
        _assert_412_names(payload, key, "the FHIR server answered HTTP 500")


def test_connection_refused_is_412(kb) -> None:
    base = refused_base_url()
    app = _app(kb, base)
    status, payload, seconds = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=base))
    assert seconds < NO_HANG_SECONDS
    assert status == 412
    for key in ("patient", "conditions", "medicationRequests"):
        _assert_412_names(payload, key, "the FHIR server could not be reached")


def test_server_not_on_allowlist_is_never_contacted(kb, server: FaultyFhirServer) -> None:
    app = _app(kb, "https://fhir.hospital.example/")
    status, payload, _ = _post(app, order_sign(KETAMINE_DRAFT, fhir_server=server.base_url))
    assert server.requests_seen == 0
    assert status in (400, 412)
    assert payload["resourceType"] == "OperationOutcome"
