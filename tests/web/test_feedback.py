"""POST /cds-services/{id}/feedback through the real Flask app, card recording and the readiness ping."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from cds_service.config import ConfigError, Settings
from cds_service.feedback.runtime import FeedbackRuntime
from cds_service.web import feedback as blueprint
from cds_service.web.app import create_app
from cds_service.web.feedback import ping, record_cards, runtime_of
from tests.clock import NOW

KB = "2026.11.1"  # the knowledge-base version every recorded card carries
URL = "/cds-services/ketamine-order-sign/feedback"


def override(card: str, stamp: str = "2026-11-23T12:00:00Z", **reason: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"card": card, "outcome": "overridden", "outcomeTimestamp": stamp}
    if reason:
        item["overrideReason"] = reason
    return item


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    application = create_app(Settings(auth_enabled=False, database_url=database_url))
    yield application
    runtime = runtime_of(application)
    assert runtime is not None
    runtime.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def store_of(app: Flask):  # type: ignore[no-untyped-def]
    runtime = runtime_of(app)
    assert runtime is not None and runtime.store is not None
    return runtime.store


def test_feedback_is_stored_and_a_resend_is_acknowledged_as_a_duplicate(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        record_cards("ketamine-order-sign", "order-sign", "hi-1", [("card-1", "psychosis", "critical")], kb_version=KB)
    assert runtime_of(app).writer.flush()  # type: ignore[union-attr]
    body = {"feedback": [override("card-1", reason={"system": "urn:ketamine-cds:override-reason",
                                                     "code": "documented-elsewhere"})]}
    first = client.post(URL, json=body)
    assert (first.status_code, first.json) == (200, {"stored": 1, "duplicates": 0, "unknownCards": 0})
    again = client.post(URL, json=body)
    assert (again.status_code, again.json) == (200, {"stored": 0, "duplicates": 1, "unknownCards": 0})
    rows = store_of(app).feedback_rows(None)
    assert [(r.card_uuid, r.topic, r.reason_code, r.reason_display) for r in rows] == [
        ("card-1", "psychosis", "documented-elsewhere", None)]


def test_an_override_reason_with_a_code_but_no_system_or_display_is_stored(app: Flask, client: FlaskClient) -> None:
    body = {"feedback": [override("card-2", reason={"code": "benefit-outweighs-risk"})]}
    response = client.post(URL, json=body)
    assert (response.status_code, response.json) == (200, {"stored": 1, "duplicates": 0, "unknownCards": 1})
    (row,) = store_of(app).feedback_rows(None)
    assert (row.reason_system, row.reason_code, row.reason_display) == (None, "benefit-outweighs-risk", None)


def test_feedback_for_an_unknown_card_is_stored_and_flagged(app: Flask, client: FlaskClient) -> None:
    response = client.post(URL, json={"feedback": [override("never-shown")]})
    assert response.status_code == 200
    assert response.json["unknownCards"] == 1  # type: ignore[index]
    assert store_of(app).feedback_flags() == {"never-shown": False}


def test_malformed_feedback_is_a_400_operation_outcome_naming_the_field(client: FlaskClient) -> None:
    response = client.post(URL, json={"feedback": [{"card": "c", "outcome": "accepted",
                                                    "outcomeTimestamp": "2026-11-23T12:00:00Z"}]})
    assert response.status_code == 400
    outcome = response.json
    assert outcome["resourceType"] == "OperationOutcome"  # type: ignore[index]
    issue = outcome["issue"][0]  # type: ignore[index]
    assert issue["severity"] == "error"
    assert issue["expression"] == ["feedback[0].acceptedSuggestions"]
    assert "feedback[0].acceptedSuggestions" in issue["diagnostics"]


@pytest.mark.parametrize(
    ("stamp", "status"),
    [("0001-01-01T00:00:00+09:07", 400), ("0001-01-01T00:00:00Z", 200),
     ("9999-12-31T23:59:59-00:01", 400), ("9999-12-31T23:59:59+00:01", 200)],
)
def test_a_timestamp_at_the_edge_of_the_calendar_is_stored_or_a_400_never_a_500(
    client: FlaskClient, stamp: str, status: int
) -> None:
    """Found by schemathesis: an offset moving year 1 out of range used to overflow into a 500."""
    response = client.post(URL, json={"feedback": [override("edge-card", stamp)]})
    assert response.status_code == status
    if status == 400:
        (issue,) = response.json["issue"]  # type: ignore[index]
        assert issue["expression"] == ["feedback[0].outcomeTimestamp"]


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [("[1,", "application/json", 400), ("", "application/json", 400), ("{}", "text/plain", 415)],
)
def test_a_body_that_is_not_json_is_refused(client: FlaskClient, data: str, content_type: str,
                                            status: int) -> None:
    response = client.post(URL, data=data, content_type=content_type)
    assert response.status_code == status
    assert response.json["resourceType"] == "OperationOutcome"  # type: ignore[index]


def test_an_unknown_service_is_a_404(client: FlaskClient) -> None:
    response = client.post("/cds-services/no-such-service/feedback", json={"feedback": [override("c")]})
    assert response.status_code == 404
    assert response.json["issue"][0]["code"] == "not-found"  # type: ignore[index]


def test_cards_returned_by_a_hook_call_are_recorded(app: Flask) -> None:
    now = NOW
    with app.app_context():
        record_cards("ketamine-order-select", "order-select", "hi-9",
                     [("u1", "eligibility-summary", "info"), ("u2", "pregnancy", "critical"), ("", "x", "info")],
                     now=now, kb_version=KB)
    assert runtime_of(app).writer.flush()  # type: ignore[union-attr]
    assert sorted(store_of(app).shown_counts(None)) == [("eligibility-summary", "info", 1),
                                                        ("pregnancy", "critical", 1)]


def test_record_cards_outside_an_app_is_a_no_op() -> None:
    # no error, nothing to do
    record_cards("ketamine-order-sign", "order-sign", "hi", [("u", "t", "info")], kb_version=KB)


def test_ping_says_none_when_the_store_answers(app: Flask) -> None:
    assert ping(app) is None
    assert ping(Flask("bare")) == "feedback store not configured"


def test_an_unreachable_database_does_not_stop_the_service(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(blueprint, "RETRY_OPEN_SECONDS", 3600.0)
    application = create_app(Settings(auth_enabled=False, database_url="postgresql://u:pw@127.0.0.1:1/none"))
    try:
        reason = ping(application)
        assert reason is not None and "unavailable" in reason and "pw" not in reason
        with application.app_context():  # dropped, counted, and never raised into the hook
            record_cards("ketamine-order-sign", "order-sign", "hi", [("u", "t", "info")], kb_version=KB)
        assert runtime_of(application).card_stats().dropped == 1  # type: ignore[union-attr]
        response = application.test_client().post(URL, json={"feedback": [override("c")]})
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json["issue"][0]["code"] == "transient"  # type: ignore[index]
    finally:
        runtime_of(application).close()  # type: ignore[union-attr]


def test_cards_shown_while_the_store_is_unavailable_are_exported_as_unrecorded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The card is counted in /metrics, as docs/feedback.md says, and /readyz names the store."""
    monkeypatch.setattr(blueprint, "RETRY_OPEN_SECONDS", 3600.0)
    application = create_app(Settings(auth_enabled=False, database_url="postgresql://u:pw@127.0.0.1:1/none"))
    client = application.test_client()
    label = 'ketamine_cds_feedback_cards_total{outcome="store-unavailable"}'

    def unrecorded() -> float:
        line = next(x for x in client.get("/metrics").get_data(as_text=True).splitlines() if x.startswith(label))
        return float(line.rsplit(" ", 1)[1])

    try:
        before = unrecorded()
        with application.app_context():
            record_cards("ketamine-order-sign", "order-sign", "hi", [("u1", "t", "info"), ("u2", "t", "info")],
                         kb_version=KB)
        assert unrecorded() == before + 2
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "unavailable" in ready.json["checks"]["feedbackStore"]  # type: ignore[index]
    finally:
        runtime_of(application).close()  # type: ignore[union-attr]


def test_a_malformed_database_url_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        create_app(Settings(auth_enabled=False, database_url="mysql://h/db"))


def test_the_runtime_flushes_queued_cards_when_closed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runtime = FeedbackRuntime(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    runtime.start()
    application = Flask("t")
    application.extensions[blueprint.EXTENSION_KEY] = runtime
    with application.app_context():
        for i in range(50):
            record_cards("ketamine-order-sign", "order-sign", f"hi-{i}", [(f"u{i}", "psychosis", "critical")],
                         kb_version=KB)
    store = runtime.store
    runtime.close()
    assert store is not None
    reopened = type(store).open(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    assert reopened.shown_counts(None) == [("psychosis", "critical", 50)]
    reopened.close()


# authentication is the security layer's, installed for every /cds-services path: feedback included


def test_feedback_needs_the_client_jwt_like_the_other_endpoints(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "k1", "alg": "ES384", "use": "sig"})
    clients = tmp_path / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": "https://ehr.example.org", "jwks": {"keys": [jwk]}}]}))
    application = create_app(Settings(
        auth_enabled=True,
        trusted_clients_file=str(clients),
        public_base_url="https://cds.example.org",
        database_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}",
    ))
    try:
        client = application.test_client()
        body = {"feedback": [override("c1")]}
        assert client.post(URL, json=body).status_code == 401
        now = int(time.time())  # the verifier checks exp/iat against the real clock
        token = jwt.encode(
            {"iss": "https://ehr.example.org", "aud": f"https://cds.example.org{URL}", "iat": now,
             "exp": now + 60, "jti": str(uuid.uuid4())},
            key, algorithm="ES384", headers={"kid": "k1", "typ": "JWT"},
        )
        response = client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    finally:
        runtime_of(application).close()  # type: ignore[union-attr]


def test_a_real_hook_call_records_its_cards_and_their_feedback_is_attributed(app: Flask, client: FlaskClient) -> None:
    request_file = Path(__file__).parents[2] / "fhir_fixtures/requests/bipolar-no-mood-stabilizer/order-sign.json"
    hook = client.post("/cds-services/ketamine-order-sign", json=json.loads(request_file.read_text()))
    assert hook.status_code == 200
    cards = hook.json["cards"]  # type: ignore[index]
    assert runtime_of(app).writer.flush()  # type: ignore[union-attr]
    topics = {c["source"]["topic"]["code"] for c in cards}
    assert {t for t, _, _ in store_of(app).shown_counts(None)} == topics
    critical = next(c for c in cards if c["indicator"] == "critical")
    reason = {k: v for k, v in critical["overrideReasons"][0].items() if k != "display"}  # as the Sandbox sends it
    response = client.post(URL, json={"feedback": [override(critical["uuid"], reason=reason)]})
    assert response.json == {"stored": 1, "duplicates": 0, "unknownCards": 0}
    (row,) = store_of(app).feedback_rows(None)
    assert (row.topic, row.card_known) == (critical["source"]["topic"]["code"], True)
