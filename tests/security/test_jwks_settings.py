"""The JWK Set cache TTL and refresh interval come from the environment (KETAMINE_CDS_JWKS_*).

Defaults stay as they were (1 hour, 60 s); bad values stop the service at start naming the variable; the
configured values reach the verifier the app builds and are honoured, with the clock injected (never slept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from cds_service import cli
from cds_service.config import ConfigError, Settings
from cds_service.security import flask_auth
from cds_service.security.jwks import JwksCache
from cds_service.security.replay import MemoryReplayCache
from cds_service.security.trusted_clients import parse_trusted_clients
from cds_service.security.verifier import AuthError, Verifier
from cds_service.web import serve
from cds_service.web.app import create_app
from tests.clock import NOW as CLOCK
from tests.security.security_support import AUD, ISS, Clock, SigningKey, claims, jwks_of

TTL = "KETAMINE_CDS_JWKS_CACHE_TTL"
REFRESH = "KETAMINE_CDS_JWKS_MIN_REFRESH_INTERVAL"
URL = "https://ehr.example.org/.well-known/jwks.json"
NOW = CLOCK.timestamp()  # 2026-11-23T12:00:00Z, the suite's fixed clock (tests.clock), in seconds


# --- parsing and defaults -----------------------------------------------------------------------------

def test_defaults_are_unchanged() -> None:
    for settings in (Settings(), Settings.from_env({})):
        assert settings.jwks_cache_ttl_seconds == 3600
        assert settings.jwks_min_refresh_interval_seconds == 60
    cache = JwksCache.from_settings(Settings())
    default = JwksCache()
    assert (cache.ttl_seconds, cache.min_refresh_interval) == (default.ttl_seconds, default.min_refresh_interval)
    assert (default.ttl_seconds, default.min_refresh_interval) == (3600, 60)


def test_configured_values_are_read() -> None:
    settings = Settings.from_env({TTL: "900", REFRESH: "300"})
    assert (settings.jwks_cache_ttl_seconds, settings.jwks_min_refresh_interval_seconds) == (900, 300)


def test_interval_equal_to_the_ttl_and_the_smallest_values_are_accepted() -> None:
    assert Settings.from_env({TTL: "1", REFRESH: "1"}).jwks_cache_ttl_seconds == 1
    assert Settings.from_env({TTL: "120", REFRESH: "120"}).jwks_min_refresh_interval_seconds == 120


@pytest.mark.parametrize(("env", "named"), [
    ({TTL: "an hour"}, TTL),
    ({TTL: "3600.5"}, TTL),
    ({TTL: "0"}, TTL),
    ({TTL: "-60"}, TTL),
    ({REFRESH: "soon"}, REFRESH),
    ({REFRESH: "0"}, REFRESH),  # zero would let forged kids trigger a fetch on every call
    ({REFRESH: "-1"}, REFRESH),
    ({TTL: "30"}, REFRESH),  # default interval 60 > TTL 30
    ({TTL: "600", REFRESH: "601"}, REFRESH),
])
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize(("name", "value"), [(TTL, "0"), (REFRESH, "x"), (REFRESH, "7200")])
def test_serve_refuses_to_start_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    def never(*args: Any) -> None:
        raise AssertionError("gunicorn must not start with a bad setting")

    monkeypatch.setattr(serve, "GunicornApplication", never)
    monkeypatch.setenv("KETAMINE_CDS_AUTH", "off")
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    monkeypatch.setenv(name, value)
    assert cli.main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and name in err


# --- the configured values reach the verifier the app builds ------------------------------------------

def test_the_app_verifier_uses_the_configured_cache(tmp_path: Path, kb: Any, k1: SigningKey) -> None:
    clients = tmp_path / "trusted-clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": ISS, "jwks_url": URL}]}))
    settings = Settings.from_env({
        "KETAMINE_CDS_TRUSTED_CLIENTS": str(clients),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite3'}",
        TTL: "900",
        REFRESH: "300",
    })
    app = create_app(settings, kb=kb)
    verifier = app.extensions[flask_auth.EXTENSION_KEY]
    assert isinstance(verifier, Verifier)
    assert (verifier.jwks.ttl_seconds, verifier.jwks.min_refresh_interval) == (900, 300)


# --- the configured values are honoured (time injected) ------------------------------------------------

def verifier_with(cache: JwksCache) -> Verifier:
    clients = parse_trusted_clients([{"iss": ISS, "jwks_url": URL}])
    return Verifier(clients, jwks=cache, replay=MemoryReplayCache(clock=lambda: NOW), clock=lambda: NOW)


@responses.activate
def test_unknown_kid_refetches_no_sooner_than_the_configured_interval(k1: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    cache = JwksCache.from_settings(Settings.from_env({TTL: "3600", REFRESH: "300"}), clock=clock)
    v = verifier_with(cache)
    v.verify(k1.sign(claims(NOW)), AUD)
    forger = SigningKey.generate("ES384", kid="made-up")
    clock.t += 60  # the default interval would allow a refetch here
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(forger.sign(claims(NOW)), AUD)
    clock.t += 239  # 299 s after the fetch
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(forger.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 1
    clock.t += 1  # 300 s
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(forger.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 2
    clock.t += 299  # the next attempt is again limited by the interval
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(forger.sign(claims(NOW)), AUD)
    assert len(responses.calls) == 2


@responses.activate
def test_a_short_interval_lets_a_rotated_key_in_sooner(k1: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    cache = JwksCache.from_settings(Settings.from_env({REFRESH: "5"}), clock=clock)
    v = verifier_with(cache)
    v.verify(k1.sign(claims(NOW)), AUD)
    rotated = SigningKey.generate("ES384", kid="k2")
    responses.replace(responses.GET, URL, json=jwks_of(k1, rotated))
    clock.t += 4
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(rotated.sign(claims(NOW)), AUD)
    clock.t += 1
    assert v.verify(rotated.sign(claims(NOW)), AUD).kid == "k2"
    assert len(responses.calls) == 2


@responses.activate
def test_the_cached_set_expires_at_the_configured_ttl(k1: SigningKey) -> None:
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    cache = JwksCache.from_settings(Settings.from_env({TTL: "900", REFRESH: "30"}), clock=clock)
    assert cache.key(URL, "k1") is not None
    clock.t += 899
    assert cache.key(URL, "k1") is not None
    assert len(responses.calls) == 1  # still fresh: served from the cache
    clock.t += 1  # 900 s: expired, fetched again although the kid is known
    assert cache.key(URL, "k1") is not None
    assert len(responses.calls) == 2


@responses.activate
def test_a_key_removed_by_the_client_stops_working_at_the_ttl(k1: SigningKey) -> None:
    """Expiry matters for revocation: a key the client withdrew is refused once the cached set expires."""
    clock = Clock()
    responses.get(URL, json=jwks_of(k1))
    cache = JwksCache.from_settings(Settings.from_env({TTL: "120", REFRESH: "60"}), clock=clock)
    v = verifier_with(cache)
    v.verify(k1.sign(claims(NOW)), AUD)
    responses.replace(responses.GET, URL, json=jwks_of(SigningKey.generate("ES384", kid="k9")))
    clock.t += 119
    assert v.verify(k1.sign(claims(NOW)), AUD).kid == "k1"
    clock.t += 1
    with pytest.raises(AuthError, match="unknown-kid"):
        v.verify(k1.sign(claims(NOW)), AUD)
