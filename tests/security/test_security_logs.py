"""Logs carry no PHI, tokens or bodies: a full authenticated order-sign call whose data carries markers,
all log output captured at DEBUG; plus the JSON formatter and the redaction of third-party URL logs."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from cds_service.config import Settings
from cds_service.observability.request_log import REQUEST_LOGGER, JsonFormatter, RedactFilter, configure_logging
from cds_service.web.app import create_app
from cds_service.web.feedback import runtime_of
from tests.security.security_support import BASE, ISS, SIGN_SERVICE, SigningKey, claims, jwks_of, order_sign_body

FHIR = "https://fhir.example.org/r4"
PATIENT_ID = "PHI-ID-MARKER"
NAME = "PHI-NAME-MARKER"
NOTE = "PHI-NOTE-MARKER"
FETCHED = "PHI-FETCHED-MARKER"
ACCESS_TOKEN = "TOKEN-MARKER"
USER = "PHI-USER-MARKER"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}


def _obs(obs_id: str, code: str, display: str, **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": obs_id, "status": "final",
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "effectiveDateTime": "2026-11-20T09:00:00Z", "note": [{"text": NOTE}], **value}


def marked_prefetch() -> dict[str, Any]:
    """Every prefetch key but ``administrations`` (read from fhirServer with the access token)."""
    patient = {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1980-04-02", "gender": "female",
               "name": [{"family": NAME, "given": [NAME]}], "identifier": [{"value": PATIENT_ID}]}
    condition = {"resourceType": "Condition", "id": "cond-1", "subject": {"reference": f"Patient/{PATIENT_ID}"},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                "code": "active"}]},
                 "code": {"coding": [{"system": SNOMED, "code": "370143000", "display": "Major depressive disorder"}],
                          "text": NOTE},
                 "recordedDate": "2024-01-10", "note": [{"text": NOTE}]}
    bp = _obs("bp-1", "85354-9", "Blood pressure panel", component=[
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
         "valueQuantity": {"value": 128, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
         "valueQuantity": {"value": 82, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ])
    weight = _obs("wt-1", "29463-7", "Body weight",
                  valueQuantity={"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"})
    return {
        "patient": patient,
        "conditions": _bundle(condition),
        "medicationRequests": _bundle(),
        "medicationStatements": _bundle(),
        "bloodPressure": _bundle(bp),
        "bodyWeight": _bundle(weight),
        "depressionScores": _bundle(),
        "pregnancyTests": _bundle(),
    }


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey.generate("ES384", kid="es-logs")


@pytest.fixture
def app(tmp_path: Path, signing_key: SigningKey, kb: Any) -> Any:
    clients = tmp_path / "clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": ISS, "jwks": jwks_of(signing_key)}]}))
    settings = Settings(
        auth_enabled=True, trusted_clients_file=str(clients), public_base_url=BASE,
        database_url=f"sqlite:///{tmp_path / 'service.sqlite3'}", fhir_server_allowlist=(FHIR,),
        log_level="DEBUG",
    )
    return create_app(settings, kb=kb)


@responses.activate
def test_full_request_logs_no_phi_tokens_or_bodies(
    app: Any, signing_key: SigningKey, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    fetched = {"resourceType": "MedicationAdministration", "id": "adm-1", "status": "completed",
               "subject": {"reference": f"Patient/{PATIENT_ID}"}, "note": [{"text": FETCHED}],
               "medicationCodeableConcept": {"text": FETCHED}, "effectiveDateTime": "2026-10-01T10:00:00Z"}
    responses.add(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), json=_bundle(fetched))

    path = f"/cds-services/{SIGN_SERVICE}"
    jwt_token = signing_key.sign(claims(time.time(), aud=BASE + path))
    body = order_sign_body(PATIENT_ID, prefetch=marked_prefetch(), fhir_server=FHIR, access_token=ACCESS_TOKEN)
    body["context"]["userId"] = f"Practitioner/{USER}"

    json_out = io.StringIO()
    capture = logging.StreamHandler(json_out)
    capture.setFormatter(JsonFormatter())
    capture.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(capture)
    caplog.set_level(logging.DEBUG)
    try:
        resp = app.test_client().post(path, json=body, headers={"Authorization": f"Bearer {jwt_token}"})
    finally:
        root.removeHandler(capture)

    # the call really went through authentication, the FHIR fetch, the rules and the rendering
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    cards = resp.get_json()["cards"]
    assert cards
    assert len(responses.calls) >= 1
    for c in responses.calls:
        assert str(c.request.url).startswith(FHIR + "/")
        assert c.request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"

    # the one request line says what happened, from the audit only
    lines = [json.loads(line) for line in json_out.getvalue().splitlines()]
    request_lines = [ln for ln in lines if ln["logger"] == REQUEST_LOGGER]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["status"] == 200
    assert line["hook_instance"] == body["hookInstance"]
    assert line["service_id"] == SIGN_SERVICE
    assert line["client_iss"] == ISS
    assert line["card_uuids"] == [c["uuid"] for c in cards]
    assert line["topics"]
    assert line["route"] == "/cds-services/<service_id>"

    # and nothing anywhere carries patient data, tokens or bodies
    captured = capfd.readouterr()
    raw_messages = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__.get('cds', '')}" for r in caplog.records)
    everything = "\n".join([json_out.getvalue(), caplog.text, raw_messages, captured.out, captured.err])
    assert everything.strip(), "no log output captured: the test would prove nothing"
    markers = [PATIENT_ID, NAME, NOTE, FETCHED, ACCESS_TOKEN, USER, jwt_token, jwt_token.split(".")[2]]
    for marker in markers:
        assert marker not in everything, f"{marker[:20]} leaked into the logs"

    # ... nor the service's database (replay cache, feedback store): the file and its WAL, once the card
    # writer has written what it queued
    runtime = runtime_of(app)
    assert runtime is not None and runtime.writer is not None and runtime.writer.flush()
    files = sorted(tmp_path.glob("service.sqlite3*"))
    assert any(f.name.endswith("-wal") for f in files)  # recent writes live there, not in the main file
    db = b"".join(f.read_bytes() for f in files)
    assert cards[0]["uuid"].encode() in db  # the cards were recorded: the search below can find things
    for marker in markers:
        assert marker.encode() not in db


def test_formatter_writes_exception_type_and_frames_never_the_message() -> None:
    logger = logging.getLogger("cds_service.test_security_logs")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        try:
            raise KeyError(f"{NAME} {PATIENT_ID}")
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["msg"] == "lookup failed"
    assert line["exc_type"] == "KeyError"
    assert any("test_security_logs.py" in f for f in line["exc_frames"])
    assert NAME not in out.getvalue() and PATIENT_ID not in out.getvalue()


def _record(name: str, msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, args, None)


def test_access_logs_lose_their_query_strings() -> None:
    record = _record("werkzeug", '127.0.0.1 - - [23/Nov/2026 12:00:00] "%s" %s -',
                     f"GET /cds-services?patient={PATIENT_ID}&access_token={ACCESS_TOKEN} HTTP/1.1", 200)
    assert RedactFilter().filter(record)
    text = record.getMessage()
    assert "GET /cds-services?[redacted] HTTP/1.1" in text
    assert PATIENT_ID not in text and ACCESS_TOKEN not in text


@pytest.mark.parametrize("msg", [
    '%s://%s:%s "%s %s %s" %s %s',
    "Retrying (%r) after connection broken by '%r': %s",
])
def test_urllib3_lines_lose_their_urls(msg: str) -> None:
    args = (("https", "fhir.example.org", 443, "GET", f"/r4/Patient/{PATIENT_ID}?x={ACCESS_TOKEN}", "HTTP/1.1",
             200, 512) if msg.startswith("%s://") else ("Retry(total=1)", "ReadTimeout()",
                                                         f"/r4/Patient/{PATIENT_ID}"))
    record = _record("urllib3.connectionpool", msg, *args)
    RedactFilter().filter(record)
    assert PATIENT_ID not in record.getMessage()
    assert record.getMessage().endswith("[url redacted]")


def test_configure_logging_installs_the_filters_once() -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    for name in ("werkzeug", "gunicorn.access", "urllib3.connectionpool"):
        assert sum(isinstance(f, RedactFilter) for f in logging.getLogger(name).filters) == 1


def test_rejected_request_still_gets_exactly_one_request_line(app: Any) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger(REQUEST_LOGGER).addHandler(handler)
    try:
        resp = app.test_client().get("/cds-services?patient=PHI-ID-MARKER",
                                     headers={"Authorization": "Bearer TOKEN-MARKER"})
    finally:
        logging.getLogger(REQUEST_LOGGER).removeHandler(handler)
    assert resp.status_code == 401
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["status"] == 401
    assert lines[0]["client_iss"] is None
    assert lines[0]["route"] == "/cds-services"
    assert isinstance(lines[0]["total_ms"], float)
    assert PATIENT_ID not in out.getvalue() and ACCESS_TOKEN not in out.getvalue()


def test_hook_instance_that_is_not_an_id_is_not_logged_verbatim() -> None:
    from cds_service.observability.request_log import _safe_id

    assert _safe_id("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea") == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert _safe_id(f"Jane Doe {PATIENT_ID}") == "[invalid]"
    assert _safe_id("x" * 101) == "[invalid]"


@responses.activate(assert_all_requests_are_fired=False)
def test_access_token_never_leaves_the_requests_fhir_server(app: Any, signing_key: SigningKey) -> None:
    """A paged answer whose ``next`` link points elsewhere must not carry the token (or be fetched) there."""
    evil = "https://evil.example.net/r4/MedicationAdministration?page=2"
    page = _bundle()
    page["link"] = [{"relation": "next", "url": evil}]
    responses.add(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), json=page)
    responses.add(responses.GET, re.compile(r"https://evil\.example\.net/.*"), json=_bundle())
    path = f"/cds-services/{SIGN_SERVICE}"
    body = order_sign_body(PATIENT_ID, prefetch=marked_prefetch(), fhir_server=FHIR, access_token=ACCESS_TOKEN)
    resp = app.test_client().post(path, json=body, headers={
        "Authorization": f"Bearer {signing_key.sign(claims(time.time(), aud=BASE + path))}"})
    assert resp.status_code == 200
    assert responses.calls, "the missing prefetch key was not read from fhirServer"
    for c in responses.calls:
        assert str(c.request.url).startswith(FHIR + "/")
