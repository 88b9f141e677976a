"""jti replay cache (memory and SQL, shared between processes) and the trusted-clients file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from cds_service.config import ConfigError
from cds_service.security.replay import TABLE_NAME, MemoryReplayCache, SqlReplayCache
from cds_service.security.trusted_clients import (
    TrustedClientsError,
    load_trusted_clients,
    parse_trusted_clients,
)
from tests.clock import NOW as CLOCK
from tests.security.security_support import Clock, SigningKey, jwks_of

NOW = CLOCK.timestamp()  # 2026-11-23T12:00:00Z, the suite's fixed clock (tests.clock), in seconds


@pytest.fixture(params=["memory", "sql"])
def cache_and_clock(request: pytest.FixtureRequest, tmp_path: Path):
    clock = Clock(NOW)
    if request.param == "memory":
        return MemoryReplayCache(clock=clock), clock
    return SqlReplayCache(f"sqlite:///{tmp_path / 'replay.sqlite3'}", clock=clock), clock


def test_first_use_then_replay(cache_and_clock) -> None:
    cache, _ = cache_and_clock
    assert cache.first_use("iss", "a", NOW + 300) is True
    assert cache.first_use("iss", "a", NOW + 300) is False
    assert cache.first_use("iss", "b", NOW + 300) is True
    assert cache.first_use("other-iss", "a", NOW + 300) is True


def test_entry_expires_with_the_token(cache_and_clock) -> None:
    cache, clock = cache_and_clock
    assert cache.first_use("iss", "a", NOW + 300)
    clock.t = NOW + 300
    assert cache.first_use("iss", "a", NOW + 600) is False
    clock.t = NOW + 302
    assert cache.first_use("iss", "a", NOW + 600) is True


def test_sql_cache_is_shared_between_instances(tmp_path: Path) -> None:
    """Two workers (or replicas) on one database see each other's tokens."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    worker_a = SqlReplayCache(url, clock=Clock(NOW))
    worker_b = SqlReplayCache(url, clock=Clock(NOW))
    assert worker_a.first_use("iss", "jti-1", NOW + 300)
    assert worker_b.first_use("iss", "jti-1", NOW + 300) is False


def test_sql_cache_stores_no_token_content(tmp_path: Path) -> None:
    cache = SqlReplayCache(f"sqlite:///{tmp_path / 'r.sqlite3'}", clock=Clock(NOW))
    cache.first_use("https://ehr.example.org", "JTI-MARKER", NOW + 300)
    with cache.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {TABLE_NAME}")).all()
    assert len(rows) == 1
    assert "JTI-MARKER" not in repr(rows)
    assert "ehr.example.org" not in repr(rows)


def test_purge_deletes_expired_rows(tmp_path: Path) -> None:
    clock = Clock(NOW)
    cache = SqlReplayCache(f"sqlite:///{tmp_path / 'p.sqlite3'}", clock=clock)
    cache.first_use("iss", "old", NOW + 10)
    cache.first_use("iss", "new", NOW + 1000)
    assert cache.purge(NOW + 100) == 1


def test_sql_cache_on_in_memory_sqlite() -> None:
    cache = SqlReplayCache("sqlite://", clock=Clock(NOW))
    assert cache.first_use("iss", "x", NOW + 60)
    assert not cache.first_use("iss", "x", NOW + 60)


# --- trusted clients ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jwks() -> dict:
    return jwks_of(SigningKey.generate("ES384", kid="k1"))


def test_yaml_file(tmp_path: Path) -> None:
    f = tmp_path / "clients.yaml"
    f.write_text(
        "clients:\n"
        "  - iss: https://ehr.example.org\n"
        "    jwks_url: https://ehr.example.org/jwks\n"
        "    tenant: org-1\n"
        "    jku_allowlist: [https://ehr.example.org/jwks2]\n"
    )
    clients = load_trusted_clients(f)
    c = clients.get("https://ehr.example.org")
    assert c is not None
    assert c.tenants == frozenset({"org-1"})
    assert c.allows_jku("https://ehr.example.org/jwks")
    assert c.allows_jku("https://ehr.example.org/jwks2")
    assert not c.allows_jku("https://ehr.example.org/jwks2/../evil")


def test_json_file_with_inline_jwks(tmp_path: Path, jwks: dict) -> None:
    f = tmp_path / "clients.json"
    f.write_text(json.dumps([{"iss": "a", "jwks": jwks, "tenant": ["t1", "t2"]}]))
    assert load_trusted_clients(f).get("a").tenants == {"t1", "t2"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"jwks_url": "https://x"}, "'iss' is required"),
        ({"iss": "a"}, "exactly one of"),
        ({"iss": "a", "jwks_url": "https://x", "jwks": {"keys": []}}, "exactly one of"),
        ({"iss": "a", "jwks_url": "ftp://x/jwks"}, "not an absolute http"),
        ({"iss": "a", "jwks_url": "https://x", "tenant": []}, "tenant"),
        ({"iss": "a", "jwks_url": "https://x", "jku_allowlist": "https://y"}, "jku_allowlist"),
        ({"iss": "a", "jwks_url": "https://x", "color": "red"}, "unknown key"),
        ({"iss": "a", "jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "AA"}]}}, "asymmetric"),
        ({"iss": "a", "jwks": {"keys": [{"kty": "EC"}]}}, "kid"),
    ],
)
def test_invalid_entries_are_named(entry: dict, message: str) -> None:
    with pytest.raises(TrustedClientsError, match=message):
        parse_trusted_clients([entry])


def test_private_key_material_is_refused(jwks: dict) -> None:
    bad = {"keys": [{**jwks["keys"][0], "d": "secret"}]}
    with pytest.raises(TrustedClientsError, match="private key"):
        parse_trusted_clients([{"iss": "a", "jwks": bad}])


def test_duplicate_iss_is_refused() -> None:
    with pytest.raises(TrustedClientsError, match="duplicate iss"):
        parse_trusted_clients([{"iss": "a", "jwks_url": "https://x"}, {"iss": "a", "jwks_url": "https://y"}])


def test_unreadable_and_unparseable_files(tmp_path: Path) -> None:
    with pytest.raises(TrustedClientsError, match="cannot read"):
        load_trusted_clients(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TrustedClientsError, match="not valid JSON/YAML"):
        load_trusted_clients(bad)
    assert issubclass(TrustedClientsError, ConfigError)


def test_concurrent_first_use_admits_exactly_one(tmp_path: Path) -> None:
    import threading

    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    caches = [SqlReplayCache(url, clock=Clock(NOW)) for _ in range(2)]
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def worker(i: int) -> None:
        barrier.wait()
        results.append(caches[i % 2].first_use("iss", "same-jti", NOW + 300))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.postgres
def test_sql_cache_on_postgresql() -> None:
    import os
    import uuid

    url = os.environ.get("DATABASE_URL_TEST")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("DATABASE_URL_TEST is not set: .ci/run must start PostgreSQL")
        pytest.skip("DATABASE_URL_TEST not set (scripts/postgres-for-tests.sh starts a server)")
    jti = str(uuid.uuid4())
    a, b = SqlReplayCache(url, clock=Clock(NOW)), SqlReplayCache(url, clock=Clock(NOW))
    assert a.first_use("iss", jti, NOW + 300)
    assert b.first_use("iss", jti, NOW + 300) is False
