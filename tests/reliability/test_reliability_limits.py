"""Request size and JSON depth limits: 413 and 400 with an OperationOutcome, before any parsing cost."""

from __future__ import annotations

import json

from requests_for_tests import KETAMINE_DRAFT, order_sign

from cds_service.config import Settings
from cds_service.web.app import create_app


def _client(kb: object, **overrides: object):  # type: ignore[no-untyped-def]
    settings = Settings(auth_enabled=False, database_url="sqlite://", **overrides)  # type: ignore[arg-type]
    return create_app(settings, kb=kb).test_client()


def test_body_over_the_limit_is_413(kb) -> None:
    client = _client(kb, max_request_bytes=50_000)
    body = order_sign(KETAMINE_DRAFT)
    body["extension"] = {"org.example.padding": "x" * 60_000}
    response = client.post("/cds-services/ketamine-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_body_just_under_the_limit_is_accepted(kb) -> None:
    client = _client(kb, max_request_bytes=50_000)
    body = order_sign(KETAMINE_DRAFT, prefetch={"patient": None})
    body["extension"] = {"org.example.padding": "x" * 40_000}
    response = client.post("/cds-services/ketamine-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code != 413


def _nested(depth: int) -> dict[str, object]:
    node: dict[str, object] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


def test_json_deeper_than_the_limit_is_400(kb) -> None:
    client = _client(kb, max_json_depth=64)
    body = order_sign(KETAMINE_DRAFT)
    body["extension"] = {"org.example.deep": _nested(200)}
    response = client.post("/cds-services/ketamine-order-sign", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "depth" in json.dumps(outcome).lower()


def test_pathologically_deep_json_does_not_crash_the_parser(kb) -> None:
    client = _client(kb)
    raw = '{"hook": "order-sign", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post("/cds-services/ketamine-order-sign", data=raw, content_type="application/json")
    assert response.status_code in (400, 413)
    assert response.get_json()["resourceType"] == "OperationOutcome"
