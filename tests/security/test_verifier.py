"""Client JWT verification: every rejection with real ES384 and RS384 keys, and the valid paths."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
import responses

from cds_service.config import ConfigError
from cds_service.security.jwks import JwksCache
from cds_service.security.replay import MemoryReplayCache
from cds_service.security.trusted_clients import parse_trusted_clients
from cds_service.security.verifier import REASONS, AuthError, Verifier, allowed_algorithms
from tests.clock import NOW as CLOCK
from tests.security.security_support import AUD, ISS, SigningKey, b64url, claims, jwks_of, unsigned_token

NOW = CLOCK.timestamp()  # 2026-11-23T12:00:00Z, the suite's fixed clock (tests.clock), in seconds
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
OTHER_JKU = "https://attacker.example.net/jwks.json"


def make_verifier(jwks: dict, **client_extra: object) -> Verifier:
    clients = parse_trusted_clients([{"iss": ISS, "jwks": jwks, **client_extra}])
    return Verifier(clients, replay=MemoryReplayCache(clock=lambda: NOW), clock=lambda: NOW,
                    max_lifetime_seconds=3600, leeway_seconds=30)


@pytest.fixture
def verifier(es_key: SigningKey, rs_key: SigningKey) -> Verifier:
    return make_verifier(jwks_of(es_key, rs_key))


def reason_of(verifier: Verifier, token: str, aud: str = AUD) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token, aud)
    assert info.value.reason in REASONS
    return info.value.reason


# --- the valid token ---------------------------------------------------------------------------------

def test_valid_token_passes(verifier: Verifier, key: SigningKey) -> None:
    identity = verifier.verify(key.sign(claims(NOW)), AUD)
    assert identity.iss == ISS
    assert identity.kid == key.kid
    assert identity.tenant is None


def test_aud_may_be_a_list_containing_the_endpoint(verifier: Verifier, key: SigningKey) -> None:
    token = key.sign(claims(NOW, aud=["https://other.example.org", AUD]))
    assert verifier.verify(token, AUD).iss == ISS


# --- header checks -----------------------------------------------------------------------------------

def test_unsigned_token_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    token = unsigned_token({"alg": key.alg, "typ": "JWT", "kid": key.kid}, claims(NOW))
    assert reason_of(verifier, token) == "bad-signature"


def test_alg_none_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    token = jwt.encode(claims(NOW), None, algorithm="none",  # type: ignore[arg-type]
                       headers={"typ": "JWT", "kid": key.kid})
    assert reason_of(verifier, token) == "alg-not-allowed"


def _hs256_with_public_key(key: SigningKey, payload: dict) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def test_hs256_signed_with_the_public_key_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert reason_of(verifier, _hs256_with_public_key(key, claims(NOW))) == "alg-not-allowed"


def test_hmac_and_none_stay_rejected_even_if_configured(es_key: SigningKey) -> None:
    clients = parse_trusted_clients([{"iss": ISS, "jwks": jwks_of(es_key)}])
    v = Verifier(clients, algorithms=("HS256", "none", "ES384"), replay=MemoryReplayCache(), clock=lambda: NOW)
    assert v.algorithms == ("ES384",)
    assert reason_of(v, _hs256_with_public_key(es_key, claims(NOW))) == "alg-not-allowed"
    assert v.verify(es_key.sign(claims(NOW)), AUD).iss == ISS


def test_only_symmetric_algorithms_configured_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="no asymmetric algorithm"):
        allowed_algorithms(("HS256", "none"))


def test_alg_outside_the_allowlist_is_rejected(es_key: SigningKey) -> None:
    es256 = SigningKey.generate("ES256", kid="es256")
    v = make_verifier(jwks_of(es_key, es256))
    assert reason_of(v, es256.sign(claims(NOW))) == "alg-not-allowed"


@pytest.mark.parametrize("typ", [None, "at+jwt", 7])
def test_typ_must_be_jwt(verifier: Verifier, key: SigningKey, typ: object) -> None:
    token = key.sign(claims(NOW), headers={"typ": typ})
    assert reason_of(verifier, token) == "bad-typ"


def test_kid_is_required(verifier: Verifier, key: SigningKey) -> None:
    token = jwt.encode(claims(NOW), key.private_key, algorithm=key.alg, headers={"typ": "JWT"})
    assert reason_of(verifier, token) == "missing-kid"


def test_garbage_is_malformed(verifier: Verifier) -> None:
    assert reason_of(verifier, "not-a-jwt") == "malformed"


# --- issuer, jku, audience ---------------------------------------------------------------------------

def test_untrusted_iss_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    token = key.sign(claims(NOW, iss="https://rogue.example.org"))
    with pytest.raises(AuthError) as info:
        verifier.verify(token, AUD)
    assert info.value.reason == "untrusted-iss"
    assert info.value.iss == "https://rogue.example.org"


def test_missing_iss_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert reason_of(verifier, key.sign(claims(NOW, iss=None))) == "missing-claim"


# --- where the key comes from: configured keys by kid, jku only when allowlisted (CDS Hooks 2.0) --------

ROTATED_JKU = "https://keys.ehr.example.org/set2.json"


def jku_verifier(k1: SigningKey, configured: str, allowlist: tuple[str, ...] = ()) -> Verifier:
    """A client with inline keys (``configured="jwks"``, holding ``k1``) or a ``jwks_url`` (serving ``k1``)."""
    keys: dict[str, object] = {"jwks": jwks_of(k1)} if configured == "jwks" else {"jwks_url": JWKS_URL}
    clients = parse_trusted_clients([{"iss": ISS, **keys, "jku_allowlist": list(allowlist)}])
    return Verifier(clients, replay=MemoryReplayCache(clock=lambda: NOW), clock=lambda: NOW)


@pytest.fixture(scope="module")
def rotated() -> SigningKey:
    """A key the client has not configured (it rotated to it)."""
    return SigningKey.generate("ES384", kid="k-rotated")


@pytest.mark.parametrize("configured", ["jwks", "jwks_url"])
@pytest.mark.parametrize(
    ("signer", "jku", "allowlist", "outcome", "fetched"),
    [
        # kid among the configured keys: verified with it, whatever the jku says; the jku is never fetched
        ("k1", None, (), "ok", ()),
        ("k1", OTHER_JKU, (), "ok", ()),
        ("k1", ROTATED_JKU, (ROTATED_JKU,), "ok", ()),
        # kid not configured: an allowlisted jku is where a rotated key may come from ...
        ("rotated", ROTATED_JKU, (ROTATED_JKU,), "ok", (ROTATED_JKU,)),
        # ... a jku that is not allowlisted is never fetched, and without a jku there is nowhere else to look
        ("rotated", OTHER_JKU, (), "unknown-kid", ()),
        ("rotated", None, (), "unknown-kid", ()),
    ],
)
@responses.activate(assert_all_requests_are_fired=False)
def test_key_is_the_configured_one_by_kid_and_jku_is_fetched_only_when_allowlisted(
    k1: SigningKey, rotated: SigningKey, configured: str, signer: str, jku: str | None,
    allowlist: tuple[str, ...], outcome: str, fetched: tuple[str, ...],
) -> None:
    responses.get(JWKS_URL, json=jwks_of(k1))
    responses.get(ROTATED_JKU, json=jwks_of(rotated))
    responses.get(OTHER_JKU, json=jwks_of(k1, rotated))  # would let a forged token in, if it were fetched
    key = k1 if signer == "k1" else rotated
    token = key.sign(claims(NOW), headers={"jku": jku} if jku else None)
    v = jku_verifier(k1, configured, allowlist)
    if outcome == "ok":
        assert v.verify(token, AUD).kid == key.kid
    else:
        assert reason_of(v, token) == outcome
    urls = [c.request.url for c in responses.calls]
    # a jwks_url client fetches its own configured set (and again, rate-limited, on an unknown kid)
    assert [u for u in urls if u != JWKS_URL] == list(fetched)
    assert OTHER_JKU not in urls


def test_a_refused_jku_is_named_in_the_rejection_detail(k1: SigningKey, rotated: SigningKey) -> None:
    token = rotated.sign(claims(NOW), headers={"jku": OTHER_JKU})
    with pytest.raises(AuthError) as info:
        jku_verifier(k1, "jwks").verify(token, AUD)
    assert info.value.reason == "unknown-kid"
    assert info.value.detail is not None and "jku_allowlist" in info.value.detail


@pytest.mark.parametrize("jku", [7, ["https://ehr.example.org/jwks"], None])
def test_a_jku_that_is_not_a_string_is_malformed(k1: SigningKey, jku: object) -> None:
    token = k1.sign(claims(NOW), headers={"jku": jku})
    assert reason_of(jku_verifier(k1, "jwks"), token) == "malformed"


def test_wrong_aud_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert reason_of(verifier, key.sign(claims(NOW, aud="https://cds.example.org/cds-services"))) == "wrong-aud"
    assert reason_of(verifier, key.sign(claims(NOW, aud=AUD + "/"))) == "wrong-aud"
    assert reason_of(verifier, key.sign(claims(NOW, aud=["https://elsewhere.example.org"]))) == "wrong-aud"


def test_missing_aud_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert reason_of(verifier, key.sign(claims(NOW, aud=None))) == "missing-claim"


# --- times -------------------------------------------------------------------------------------------

def test_expired_is_rejected_at_the_leeway_boundary(verifier: Verifier, key: SigningKey) -> None:
    # leeway 30 s: exp 29 s ago still passes, exp 30 s ago does not
    assert verifier.verify(key.sign(claims(NOW - 300, lifetime=300 - 29)), AUD).iss == ISS
    assert reason_of(verifier, key.sign(claims(NOW - 300, lifetime=300 - 30))) == "expired"


def test_issued_in_the_future_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert verifier.verify(key.sign(claims(NOW + 30)), AUD).iss == ISS
    assert reason_of(verifier, key.sign(claims(NOW + 31))) == "iat-in-future"


def test_not_before_in_the_future_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert reason_of(verifier, key.sign(claims(NOW, nbf=int(NOW) + 31))) == "nbf-in-future"


def test_lifetime_too_long_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    assert verifier.verify(key.sign(claims(NOW, lifetime=3600)), AUD).iss == ISS
    assert reason_of(verifier, key.sign(claims(NOW, lifetime=3601))) == "lifetime-too-long"


@pytest.mark.parametrize("missing", ["exp", "iat", "jti"])
def test_required_claims(verifier: Verifier, key: SigningKey, missing: str) -> None:
    no_claim: dict[str, Any] = {missing: None}
    assert reason_of(verifier, key.sign(claims(NOW, **no_claim))) == "missing-claim"


@pytest.mark.parametrize("claim", ["exp", "iat"])
@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), 10**400, -(10**400), 1e300, "1795435500", True],
    ids=["nan", "inf", "400-digits", "minus-400-digits", "1e300", "string", "true"],
)
def test_times_that_are_no_usable_number_are_invalid_not_a_crash(
    verifier: Verifier, es_key: SigningKey, claim: str, value: object
) -> None:
    """NaN would pass every comparison, and float() of a 400-digit integer raises: both are refused."""
    assert reason_of(verifier, es_key.sign(claims(NOW, **{claim: value}))) == "invalid-claims"


# --- tenant ------------------------------------------------------------------------------------------

def test_wrong_tenant_is_rejected(es_key: SigningKey) -> None:
    v = make_verifier(jwks_of(es_key), tenant=["org-a", "org-b"])
    assert v.verify(es_key.sign(claims(NOW, tenant="org-b")), AUD).tenant == "org-b"
    assert reason_of(v, es_key.sign(claims(NOW, tenant="org-c"))) == "wrong-tenant"
    assert reason_of(v, es_key.sign(claims(NOW))) == "wrong-tenant"


def test_tenant_is_free_when_the_client_is_not_restricted(verifier: Verifier, key: SigningKey) -> None:
    assert verifier.verify(key.sign(claims(NOW, tenant="any-org")), AUD).tenant == "any-org"


# --- signature and keys ------------------------------------------------------------------------------

def test_unknown_kid_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    stranger = SigningKey.generate(key.alg, kid="not-on-record")
    assert reason_of(verifier, stranger.sign(claims(NOW))) == "unknown-kid"


def test_signature_by_another_key_under_a_known_kid_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    impostor = SigningKey.generate(key.alg, kid=key.kid)
    assert reason_of(verifier, impostor.sign(claims(NOW))) == "bad-signature"


def test_tampered_payload_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    head, _, sig = key.sign(claims(NOW)).split(".")
    forged = b64url(json.dumps(claims(NOW, tenant="injected")).encode())
    assert reason_of(verifier, f"{head}.{forged}.{sig}") == "bad-signature"


def test_header_alg_must_match_the_key(verifier: Verifier, es_key: SigningKey, rs_key: SigningKey) -> None:
    # RS384 token that names the EC key's kid: the EC key cannot verify an RS384 signature
    token = jwt.encode(claims(NOW), rs_key.private_key, algorithm="RS384",
                       headers={"typ": "JWT", "kid": es_key.kid})
    assert reason_of(verifier, token) in {"bad-key", "bad-signature"}


# --- replay ------------------------------------------------------------------------------------------

def test_replayed_jti_is_rejected(verifier: Verifier, key: SigningKey) -> None:
    token = key.sign(claims(NOW))
    verifier.verify(token, AUD)
    assert reason_of(verifier, token) == "replayed-jti"


def test_same_jti_from_another_issuer_is_not_a_replay(es_key: SigningKey) -> None:
    other = "https://ehr2.example.org"
    clients = parse_trusted_clients([{"iss": ISS, "jwks": jwks_of(es_key)}, {"iss": other, "jwks": jwks_of(es_key)}])
    v = Verifier(clients, replay=MemoryReplayCache(clock=lambda: NOW), clock=lambda: NOW)
    v.verify(es_key.sign(claims(NOW, jti="same")), AUD)
    assert v.verify(es_key.sign(claims(NOW, iss=other, jti="same")), AUD).iss == other


def test_rejected_tokens_are_not_recorded_as_seen(verifier: Verifier, key: SigningKey) -> None:
    """A forged token must not burn the jti of a genuine one."""
    jti = "shared-jti"
    impostor = SigningKey.generate(key.alg, kid=key.kid)
    assert reason_of(verifier, impostor.sign(claims(NOW, jti=jti))) == "bad-signature"
    assert verifier.verify(key.sign(claims(NOW, jti=jti)), AUD).jti == jti


# --- JWK Set from a URL ------------------------------------------------------------------------------

@responses.activate
def test_jwks_url_key_verifies(es_key: SigningKey, rs_key: SigningKey) -> None:
    responses.get(JWKS_URL, json=jwks_of(es_key, rs_key))
    clients = parse_trusted_clients([{"iss": ISS, "jwks_url": JWKS_URL}])
    v = Verifier(clients, replay=MemoryReplayCache(), clock=lambda: NOW, jwks=JwksCache())
    assert v.verify(es_key.sign(claims(NOW)), AUD).kid == es_key.kid
    assert v.verify(rs_key.sign(claims(NOW)), AUD).kid == rs_key.kid
    assert len(responses.calls) == 1  # cached


@responses.activate
def test_symmetric_key_in_the_jwks_is_never_used(es_key: SigningKey) -> None:
    secret = b"k" * 32
    responses.get(JWKS_URL, json={"keys": [{"kty": "oct", "kid": "hmac", "k": b64url(secret)}]})
    clients = parse_trusted_clients([{"iss": ISS, "jwks_url": JWKS_URL}])
    v = Verifier(clients, algorithms=("ES384", "HS256"), replay=MemoryReplayCache(), clock=lambda: NOW)
    token = jwt.encode(claims(NOW), secret, algorithm="HS256", headers={"typ": "JWT", "kid": "hmac"})
    assert reason_of(v, token) == "alg-not-allowed"


def test_oversized_token_is_malformed(verifier: Verifier, key: SigningKey) -> None:
    assert reason_of(verifier, key.sign(claims(NOW, pad="x" * 20000))) == "malformed"
