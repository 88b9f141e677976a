"""JWT authentication through the real app: discovery, service and feedback endpoints; start-up rules;
security headers. Tokens are signed with ES384 and RS384 keys generated here, against the wall clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
import yaml
from flask import Flask

from cds_service.config import ConfigError, Settings
from cds_service.security import flask_auth
from cds_service.security.flask_auth import AUTH_OFF_WARNING, GENERIC_MESSAGE
from cds_service.web.app import create_app
from tests.security.security_support import (
    BASE,
    ISS,
    SIGN_SERVICE,
    SigningKey,
    b64url,
    claims,
    feedback_body,
    jwks_of,
    order_sign_body,
    unsigned_token,
)

TENANT_ISS = "https://tenant-ehr.example.org"
REMOTE_ISS = "https://remote-ehr.example.org"
REMOTE_JWKS = "https://remote-ehr.example.org/jwks.json"
DISCOVERY = "/cds-services"
SERVICE = f"/cds-services/{SIGN_SERVICE}"
FEEDBACK = f"/cds-services/{SIGN_SERVICE}/feedback"


@pytest.fixture
def clients_file(tmp_path: Path, es_key: SigningKey, rs_key: SigningKey) -> Path:
    path = tmp_path / "trusted-clients.yaml"
    path.write_text(yaml.safe_dump({"clients": [
        {"iss": ISS, "jwks": jwks_of(es_key, rs_key)},
        {"iss": TENANT_ISS, "jwks": jwks_of(es_key, rs_key), "tenant": ["org-a"]},
        {"iss": REMOTE_ISS, "jwks_url": REMOTE_JWKS},
    ]}))
    return path


def make_settings(tmp_path: Path, clients_file: Path | None, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "auth_enabled": True,
        "trusted_clients_file": str(clients_file) if clients_file else None,
        "public_base_url": BASE,
        "database_url": f"sqlite:///{tmp_path / 'service.sqlite3'}",
        "fhir_server_allowlist": ("https://fhir.example.org/r4",),
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def app(tmp_path: Path, clients_file: Path, kb: Any) -> Flask:
    return create_app(make_settings(tmp_path, clients_file), kb=kb)


def token_for(key: SigningKey, path: str, *, headers: dict[str, Any] | None = None, **claim_kw: Any) -> str:
    claim_kw.setdefault("aud", BASE + path)
    return key.sign(claims(time.time(), **claim_kw), headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(app: Flask, path: str, token: str | None) -> Any:
    client = app.test_client()
    hdrs = bearer(token) if token is not None else {}
    if path == DISCOVERY:
        return client.get(path, headers=hdrs)
    body = feedback_body() if path.endswith("/feedback") else order_sign_body()
    return client.post(path, json=body, headers=hdrs)


def assert_generic_401(resp: Any) -> None:
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    body = resp.get_json()
    assert body == {"resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "login", "diagnostics": GENERIC_MESSAGE}]}


# --- valid tokens ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_valid_token_passes_on_every_endpoint(app: Flask, key: SigningKey, path: str) -> None:
    resp = call(app, path, token_for(key, path))
    # past authentication: discovery and feedback answer 200; the hook call without prefetch or
    # fhirServer reaches the pipeline, which answers 412 (required data unobtainable)
    assert resp.status_code == {DISCOVERY: 200, SERVICE: 412, FEEDBACK: 200}[path]
    if path == DISCOVERY:
        assert resp.get_json()["services"]


@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_no_token_is_401_on_every_endpoint(app: Flask, path: str) -> None:
    assert_generic_401(call(app, path, None))


def test_tenant_client_with_its_tenant_passes(app: Flask, es_key: SigningKey) -> None:
    assert call(app, DISCOVERY, token_for(es_key, DISCOVERY, iss=TENANT_ISS, tenant="org-a")).status_code == 200


@responses.activate
def test_jwks_url_client_passes(app: Flask, rs_key: SigningKey) -> None:
    responses.get(REMOTE_JWKS, json=jwks_of(rs_key))
    assert call(app, DISCOVERY, token_for(rs_key, DISCOVERY, iss=REMOTE_ISS)).status_code == 200


# --- every rejection, through HTTP, with the same generic answer --------------------------------------

def _hs256_public_key(key: SigningKey, path: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    payload = claims(time.time(), aud=BASE + path)
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest())}"


REJECTIONS: dict[str, Any] = {
    "unsigned": lambda k, p: unsigned_token({"alg": k.alg, "typ": "JWT", "kid": k.kid},
                                            claims(time.time(), aud=BASE + p)),
    "alg-none": lambda k, p: jwt.encode(claims(time.time(), aud=BASE + p), None,  # type: ignore[arg-type]
                                        algorithm="none",
                                        headers={"typ": "JWT", "kid": k.kid}),
    "hs256-public-key": _hs256_public_key,
    "wrong-aud": lambda k, p: token_for(k, p, aud=BASE + "/cds-services/other-service"),
    "expired": lambda k, p: k.sign(claims(time.time() - 400, aud=BASE + p, lifetime=300)),
    "issued-in-future": lambda k, p: k.sign(claims(time.time() + 600, aud=BASE + p)),
    "lifetime-too-long": lambda k, p: token_for(k, p, lifetime=3601),
    "unknown-kid": lambda k, p: SigningKey.generate(k.alg, kid="unknown").sign(claims(time.time(), aud=BASE + p)),
    "untrusted-iss": lambda k, p: token_for(k, p, iss="https://rogue.example.org"),
    "wrong-tenant": lambda k, p: token_for(k, p, iss=TENANT_ISS, tenant="org-b"),
    "no-typ": lambda k, p: token_for(k, p, headers={"typ": None}),
    "garbage": lambda k, p: "abc.def.ghi",
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_each_rejection_is_a_generic_401(app: Flask, key: SigningKey, case: str, path: str) -> None:
    assert_generic_401(call(app, path, REJECTIONS[case](key, path)))


def test_replayed_jti_is_rejected(app: Flask, es_key: SigningKey) -> None:
    token = token_for(es_key, DISCOVERY)
    assert call(app, DISCOVERY, token).status_code == 200
    assert_generic_401(call(app, DISCOVERY, token))


def test_replay_is_caught_across_two_app_instances(tmp_path: Path, clients_file: Path, kb: Any,
                                                   es_key: SigningKey) -> None:
    """Two workers sharing one database (SQLite file here, PostgreSQL in production)."""
    settings = make_settings(tmp_path, clients_file)
    worker_a, worker_b = create_app(settings, kb=kb), create_app(settings, kb=kb)
    token = token_for(es_key, DISCOVERY)
    assert call(worker_a, DISCOVERY, token).status_code == 200
    assert_generic_401(call(worker_b, DISCOVERY, token))


def test_token_for_one_endpoint_is_refused_on_another(app: Flask, es_key: SigningKey) -> None:
    assert_generic_401(call(app, SERVICE, token_for(es_key, DISCOVERY)))


@responses.activate(assert_all_requests_are_fired=False)
def test_jku_not_allowlisted_is_ignored_and_never_fetched(app: Flask, es_key: SigningKey) -> None:
    evil = "http://169.254.169.254/latest/jwks.json"
    stranger = SigningKey.generate("ES384", kid="stranger")
    responses.get(evil, json=jwks_of(es_key, stranger))
    responses.get(REMOTE_JWKS, json=jwks_of(es_key))
    for iss in (ISS, REMOTE_ISS):  # inline keys, and a jwks_url
        # the configured key verifies the token; its jku is not consulted
        assert call(app, DISCOVERY, token_for(es_key, DISCOVERY, iss=iss, headers={"jku": evil})).status_code == 200
        # a key id the client never configured is refused, the jku still not fetched
        assert_generic_401(call(app, DISCOVERY, token_for(stranger, DISCOVERY, iss=iss, headers={"jku": evil})))
    assert evil not in [c.request.url for c in responses.calls]


def test_rejection_reason_is_logged_and_counted_but_not_the_token(
    app: Flask, es_key: SigningKey, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    observed: list[str] = []
    monkeypatch.setattr(flask_auth, "observe_jwt_rejection", observed.append)
    token = token_for(es_key, DISCOVERY, lifetime=3601)
    with caplog.at_level(logging.DEBUG):
        assert_generic_401(call(app, DISCOVERY, token))
    assert observed == ["lifetime-too-long"]
    rejected = [r for r in caplog.records if getattr(r, "cds", {}).get("event") == "jwt-rejected"]
    assert [r.cds["reason"] for r in rejected] == ["lifetime-too-long"]  # type: ignore[attr-defined]
    assert rejected[0].cds["iss"] == ISS  # type: ignore[attr-defined]
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text


def test_audience_without_public_base_url_is_the_url_as_seen(tmp_path: Path, clients_file: Path, kb: Any,
                                                            es_key: SigningKey) -> None:
    app = create_app(make_settings(tmp_path, clients_file, public_base_url=None), kb=kb)
    seen = "http://localhost/cds-services"
    assert call(app, DISCOVERY, es_key.sign(claims(time.time(), aud=seen))).status_code == 200
    assert_generic_401(call(app, DISCOVERY, token_for(es_key, DISCOVERY)))  # the public URL is not this one


# --- what is and is not protected --------------------------------------------------------------------

@pytest.mark.parametrize("path", [DISCOVERY, SERVICE, FEEDBACK])
def test_cors_preflight_needs_no_token(app: Flask, path: str) -> None:
    resp = app.test_client().options(path, headers={"Origin": "https://sandbox.cds-hooks.org",
                                                    "Access-Control-Request-Method": "POST"})
    assert resp.status_code != 401


@pytest.mark.parametrize("path", ["/healthz", "/cds-services/unknown-service/feedback/x", "/cds-services/"])
def test_public_and_unknown_paths(app: Flask, path: str) -> None:
    resp = app.test_client().get(path)
    if path == "/healthz":
        assert resp.status_code != 401
    else:
        assert_generic_401(resp)  # everything under /cds-services is denied by default


# --- start-up ----------------------------------------------------------------------------------------

def test_auth_on_without_trusted_clients_refuses_to_start(tmp_path: Path, kb: Any) -> None:
    with pytest.raises(ConfigError, match="KETAMINE_CDS_TRUSTED_CLIENTS"):
        create_app(make_settings(tmp_path, None), kb=kb)


def test_auth_on_with_an_empty_client_list_refuses_to_start(tmp_path: Path, kb: Any) -> None:
    empty = tmp_path / "clients.json"
    empty.write_text('{"clients": []}')
    with pytest.raises(ConfigError, match="lists no trusted client"):
        create_app(make_settings(tmp_path, empty), kb=kb)


def test_malformed_client_file_refuses_to_start(tmp_path: Path, kb: Any) -> None:
    bad = tmp_path / "clients.yaml"
    bad.write_text("clients:\n  - iss: https://x\n")
    with pytest.raises(ConfigError, match="exactly one of 'jwks_url' or 'jwks'"):
        create_app(make_settings(tmp_path, bad), kb=kb)


def test_environment_defaults_to_auth_on() -> None:
    assert Settings.from_env({}).auth_enabled is True
    with pytest.raises(ConfigError, match="KETAMINE_CDS_TRUSTED_CLIENTS"):
        create_app(Settings.from_env({"DATABASE_URL": "sqlite://"}))


def test_auth_off_logs_one_loud_warning_and_lets_calls_through(
    tmp_path: Path, kb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = create_app(make_settings(tmp_path, None, auth_enabled=False), kb=kb)
    warnings = [r for r in caplog.records if r.getMessage() == AUTH_OFF_WARNING]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert call(app, DISCOVERY, None).status_code == 200


# --- security headers --------------------------------------------------------------------------------

def assert_security_headers(resp: Any) -> None:
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


def test_security_headers_on_success(app: Flask, es_key: SigningKey) -> None:
    resp = call(app, DISCOVERY, token_for(es_key, DISCOVERY))
    assert resp.status_code == 200
    assert_security_headers(resp)


def test_security_headers_on_401(app: Flask) -> None:
    assert_security_headers(call(app, SERVICE, None))


def test_security_headers_on_other_errors(app: Flask, es_key: SigningKey) -> None:
    client = app.test_client()
    bad_json = client.post(SERVICE, data=b"{not json", content_type="application/json",
                           headers=bearer(token_for(es_key, SERVICE)))
    assert bad_json.status_code == 400
    assert_security_headers(bad_json)
    not_found = client.get("/no-such-page")
    assert not_found.status_code == 404
    assert_security_headers(not_found)


def test_replay_cache_down_fails_closed_with_503(app: Flask, es_key: SigningKey) -> None:
    verifier = app.extensions[flask_auth.EXTENSION_KEY]
    verifier.replay.engine.dispose()
    Path(str(verifier.replay.engine.url.database)).unlink()
    Path(str(verifier.replay.engine.url.database)).mkdir()  # the database file is now a directory
    resp = call(app, DISCOVERY, token_for(es_key, DISCOVERY))
    assert resp.status_code == 503
    assert resp.get_json()["resourceType"] == "OperationOutcome"


def test_rules_page_keeps_working_under_its_csp(app: Flask) -> None:
    """Public (no token), framable by the EHR, and the page needs nothing its CSP forbids."""
    import re

    resp = app.test_client().get("/docs/rules")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp
    assert "X-Frame-Options" not in resp.headers
    page = resp.get_data(as_text=True)
    assert not re.search(r"<script|<link[^>]+stylesheet|\son[a-z]+=|<iframe|<form", page, re.IGNORECASE)
    assert not re.search(r"""\ssrc=["']https?://""", page, re.IGNORECASE)  # links (href) are fine
