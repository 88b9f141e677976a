"""JWK Set fetching: caching, refresh on key rotation, rate limit, limits on what is fetched."""

from __future__ import annotations

import pytest
import requests
import responses

from cds_service.security.jwks import JwksCache, JwksFetchError, parse_jwks
from cds_service.security.replay import MemoryReplayCache
from cds_service.security.trusted_clients import parse_trusted_clients
from cds_service.security.verifier import AuthError, Verifier
from tests.clock import NOW as CLOCK
from tests.security.security_support import AUD, ISS, Clock, SigningKey, claims, jwks_of

NOW = CLOCK.timestamp()  # 2026-11-23T12:00:00Z, the suite's fixed clock (tests.clock), in seconds
URL = "https://ehr.example.org/.well-known/jwks.json"


@pytest.fixture(scope="module")
def k2() -> SigningKey:
    return SigningKey.generate("RS384", kid="k2")


def verifier_with(cache: JwksCache) -> Verifier:
    clients = parse_trusted_clients([{"iss": ISS, "jwks_url": URL}])
    return Verifier(clients, jwks=cache, replay=MemoryReplayCache(clock=lambda: NOW), clock=lambda: NOW)


@responses.activate
def test_the_set_is_cached(k1: SigningKey) -> None:
    responses.get(URL, json=jwks_of(k1))
    v = verifier_with(JwksCache())
    for _ in range(3):
        v.verify(k1.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 1


@responses.activate
def test_key_rotation_is_picked_up_on_an_unknown_kid(k1: SigningKey, k2: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    v = verifier_with(JwksCache(clock=clock, min_refresh_interval=60))
    v.verify(k1.sign(claims(NOW)), AUD)
    # the client rotates to k2 and publishes it; a minute later its first k2 token arrives
    responses.replace(responses.GET, URL, json=jwks_of(k2))
    clock.t += 60
    assert v.verify(k2.sign(claims(NOW)), AUD).kid == "k2"
    assert len(responses.calls) == 2


@responses.activate
def test_refresh_on_unknown_kid_is_rate_limited(k1: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    v = verifier_with(JwksCache(clock=clock, min_refresh_interval=60))
    v.verify(k1.sign(claims(NOW)), AUD)
    forger = SigningKey.generate("ES384", kid="random")
    for _ in range(5):
        with pytest.raises(AuthError, match="unknown-kid"):
            v.verify(forger.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 1  # inside the interval: no refetch at all
    clock.t += 59
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(forger.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 1
    clock.t += 1
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(forger.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 2  # one refresh once the interval has passed
    assert v.verify(k1.sign(claims(NOW)), AUD).kid == "k1"
    assert len(responses.calls) == 2


@responses.activate
def test_stale_set_is_refetched_after_the_ttl(k1: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    cache = JwksCache(clock=clock, ttl_seconds=3600)
    assert cache.key(URL, "k1") is not None
    clock.t += 3599
    cache.key(URL, "k1")
    assert len(responses.calls) == 1
    clock.t += 1
    cache.key(URL, "k1")
    assert len(responses.calls) == 2


@responses.activate
def test_failed_refresh_keeps_the_cached_keys(k1: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    cache = JwksCache(clock=clock, ttl_seconds=10, min_refresh_interval=1)
    assert cache.key(URL, "k1") is not None
    responses.replace(responses.GET, URL, status=503)
    clock.t += 10
    assert cache.key(URL, "k1") is not None
    assert len(responses.calls) == 2


@responses.activate
def test_fetch_failure_without_cached_keys_rejects_the_token(k1: SigningKey) -> None:
    responses.get(URL, body=requests.ConnectTimeout("slow"))
    v = verifier_with(JwksCache())
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(k1.sign(claims(NOW)), AUD)


@responses.activate
def test_oversized_set_is_refused(k1: SigningKey) -> None:
    responses.get(URL, body=b"{" + b" " * 5000 + b"}")
    with pytest.raises(JwksFetchError, match="larger than"):
        JwksCache(max_bytes=4096).fetch(URL)


@responses.activate
def test_redirects_are_not_followed(k1: SigningKey) -> None:
    responses.get(URL, status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    with pytest.raises(JwksFetchError, match="http-302"):
        JwksCache().fetch(URL)
    assert [c.request.url for c in responses.calls] == [URL]


@responses.activate
def test_fetch_uses_timeouts(k1: SigningKey) -> None:
    responses.get(URL, json=jwks_of(k1))
    JwksCache(connect_timeout=1.5, read_timeout=2.5).fetch(URL)
    sent = responses.calls[0].request.req_kwargs  # type: ignore[attr-defined]
    assert sent["timeout"] == (1.5, 2.5)


def test_non_http_urls_are_never_fetched() -> None:
    with pytest.raises(JwksFetchError, match="scheme"):
        JwksCache().fetch("file:///etc/passwd")


def test_parse_keeps_only_public_asymmetric_signature_keys(k1: SigningKey) -> None:
    pub = k1.public_jwk
    keys = parse_jwks({"keys": [
        pub,
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        {**pub, "kid": "enc", "use": "enc"},
        {**pub, "kid": "priv", "d": "xxx"},
        {**pub, "kid": ""},
        "junk",
    ]})
    assert list(keys) == ["k1"]


def test_parse_rejects_a_non_set() -> None:
    with pytest.raises(JwksFetchError):
        parse_jwks({"kty": "EC"})
