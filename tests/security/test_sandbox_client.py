"""The CDS Hooks sandbox with authentication on: tokens of its exact shape are accepted on discovery, both
order services and feedback, verified with the configured key; its ``jku`` is never fetched.

The sandbox signs every call with one ES384 key whose private half is published with its source, and names
its own JWK Set in ``jku`` (header ``alg ES384, typ JWT, kid, jku``; claims ``iss, aud, exp = iat + 300, jti``,
``aud`` the exact URL called). Tokens here have that shape, signed with a key generated for the test and
configured under the sandbox's ``kid``; the documented local-sandbox entry is checked against the sandbox's
real public key.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from flask import Flask

from cds_service.config import Settings
from cds_service.security.trusted_clients import load_trusted_clients
from cds_service.web.app import create_app
from tests.security.security_support import BASE, SigningKey, feedback_body, order_sign_body

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "trusted-clients-local-sandbox.json"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
PATHS = {
    "discovery": "/cds-services",
    "order-select": "/cds-services/ketamine-order-select",
    "order-sign": "/cds-services/ketamine-order-sign",
    "feedback": "/cds-services/ketamine-order-sign/feedback",
}
PREFETCH = {
    "patient": {"resourceType": "Patient", "id": "pat-1", "birthDate": "1980-04-02", "gender": "female"},
    "conditions": {"resourceType": "Bundle", "type": "searchset", "total": 0},
    "medicationRequests": {"resourceType": "Bundle", "type": "searchset", "total": 0},
}


@pytest.fixture(scope="module")
def sandbox_key() -> SigningKey:
    return SigningKey.generate("ES384", kid=SANDBOX_KID)


def sandbox_token(key: SigningKey, aud: str, *, iat: float | None = None) -> str:
    """A token built the way the sandbox's JWT generator builds it: header and claims in its order."""
    issued = round(time.time() if iat is None else iat)
    claims = {"iss": SANDBOX_ISS, "aud": aud, "exp": issued + 300, "iat": issued, "jti": str(uuid.uuid4())}
    header = {"alg": "ES384", "typ": "JWT", "kid": key.kid, "jku": SANDBOX_JKU}
    return jwt.encode(claims, key.private_key, algorithm="ES384", headers=header)


def sandbox_app(tmp_path: Path, kb: Any, jwks: dict[str, Any]) -> Flask:
    clients = tmp_path / "trusted-clients.json"
    clients.write_text(json.dumps({"clients": [{"iss": SANDBOX_ISS, "jwks": jwks}]}))
    settings = Settings(auth_enabled=True, trusted_clients_file=str(clients), public_base_url=BASE,
                        database_url=f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    return create_app(settings, kb=kb)


def request_body(endpoint: str) -> dict[str, Any] | None:
    if endpoint == "discovery":
        return None
    if endpoint == "feedback":
        return feedback_body()
    body = order_sign_body(prefetch=PREFETCH)
    if endpoint == "order-select":
        body["hook"] = "order-select"
        body["context"]["selections"] = ["MedicationRequest/ket-1"]
    return body


def call(app: Flask, endpoint: str, token: str) -> Any:
    path, body = PATHS[endpoint], request_body(endpoint)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is None:
        return app.test_client().get(path, headers=headers)
    return app.test_client().post(path, json=body, headers=headers)


@pytest.mark.parametrize("endpoint", sorted(PATHS))
@responses.activate  # any HTTP request (a fetch of the jku) would fail the test
def test_sandbox_token_is_accepted_with_the_configured_key_and_its_jku_never_fetched(
    tmp_path: Path, kb: Any, sandbox_key: SigningKey, endpoint: str
) -> None:
    app = sandbox_app(tmp_path, kb, {"keys": [sandbox_key.public_jwk]})
    resp = call(app, endpoint, sandbox_token(sandbox_key, BASE + PATHS[endpoint]))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    if endpoint == "discovery":
        assert {s["id"] for s in body["services"]} == {
            "ketamine-order-select", "ketamine-order-sign", "ketamine-patient-view"}  # fmt: skip
    elif endpoint == "feedback":
        assert body["stored"] == 1
    else:
        assert body["cards"][0]["source"]["topic"]["code"] == "eligibility-summary"
    assert len(responses.calls) == 0


@pytest.mark.parametrize("endpoint", sorted(PATHS))
@responses.activate
def test_unknown_kid_with_a_jku_that_is_not_allowlisted_is_401_and_nothing_is_fetched(
    tmp_path: Path, kb: Any, sandbox_key: SigningKey, endpoint: str
) -> None:
    other = SigningKey.generate("ES384", kid="not-configured")
    responses.get(SANDBOX_JKU, json={"keys": [other.public_jwk]})  # would let the token in, if it were fetched
    app = sandbox_app(tmp_path, kb, {"keys": [sandbox_key.public_jwk]})
    resp = call(app, endpoint, sandbox_token(other, BASE + PATHS[endpoint]))
    assert resp.status_code == 401
    assert len(responses.calls) == 0


def test_sandbox_token_is_refused_after_its_five_minutes(tmp_path: Path, kb: Any, sandbox_key: SigningKey) -> None:
    """exp = iat + 300 and the default leeway of 30 s: 5 min 29 s after issue it passes, 5 min 30 s it does not."""
    app = sandbox_app(tmp_path, kb, {"keys": [sandbox_key.public_jwk]})
    aud = BASE + PATHS["discovery"]
    assert call(app, "discovery", sandbox_token(sandbox_key, aud, iat=time.time() - 329)).status_code == 200
    assert call(app, "discovery", sandbox_token(sandbox_key, aud, iat=time.time() - 331)).status_code == 401


# --- the documented entry for a local sandbox ---------------------------------------------------------

def test_local_sandbox_example_holds_the_sandbox_public_key() -> None:
    client = load_trusted_clients(EXAMPLE).get(SANDBOX_ISS)
    assert client is not None and client.jwks_url is None and client.jku_allowlist == ()
    key = client.inline_key(SANDBOX_KID)
    assert key is not None
    assert jwt.PyJWK(dict(key)).algorithm_name == "ES384"  # a usable P-384 public key
    assert key["x"].startswith("dw_JGR8n") and key["y"].startswith("Sm3mLE-n")  # the sandbox's published key


def test_readme_shows_the_local_sandbox_entry_and_says_it_is_for_local_use_only() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, flags=re.S)]
    assert json.loads(EXAMPLE.read_text()) in blocks
    section = readme[readme.index("### Trusted clients file"):]
    assert "docs/examples/trusted-clients-local-sandbox.json" in section
    assert re.search(r"private key .{0,80}public", section, flags=re.S)
