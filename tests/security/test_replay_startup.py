"""The SQL replay cache does not connect at start: with its database down the service still starts,
/readyz says so, and a call that needs the cache is refused with 503 until the database answers."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.config import Settings
from cds_service.security.replay import ReplayCacheUnavailable, SqlReplayCache
from cds_service.web.app import create_app
from tests.security.security_support import BASE, ISS, SigningKey, claims, jwks_of

DOWN = "postgresql+psycopg://cds:s3cr3t-pw@127.0.0.1:9/cds"  # nothing listens on loopback port 9
DISCOVERY = "/cds-services"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("ES384", kid="es-1")


def _settings(tmp_path: Path, key: SigningKey, database_url: str) -> Settings:
    clients = tmp_path / "trusted-clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": ISS, "jwks": jwks_of(key)}]}))
    return Settings(auth_enabled=True, trusted_clients_file=str(clients), public_base_url=BASE,
                    database_url=database_url)


def _call(client: Any, key: SigningKey) -> Any:
    token = key.sign(claims(time.time(), aud=BASE + DISCOVERY))
    return client.get(DISCOVERY, headers={"Authorization": f"Bearer {token}"})


def test_service_starts_with_postgresql_down_and_refuses_calls_with_503(
    tmp_path: Path, key: SigningKey, kb: Any
) -> None:
    app = create_app(_settings(tmp_path, key, DOWN), kb=kb)  # must not raise
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["feedbackStore"] != "ok"  # the same DATABASE_URL as the replay cache
    response = _call(client, key)
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert "s3cr3t-pw" not in response.get_data(as_text=True) + ready.get_data(as_text=True)


def test_construction_does_not_touch_the_database(tmp_path: Path) -> None:
    database = tmp_path / "replay.sqlite3"
    SqlReplayCache(f"sqlite:///{database}")
    assert not database.exists()


def test_cache_sets_itself_up_once_the_database_answers(tmp_path: Path) -> None:
    database = tmp_path / "replay.sqlite3"
    database.mkdir()  # a directory where the file should be: SQLite cannot open it
    cache = SqlReplayCache(f"sqlite:///{database}", clock=lambda: 1_795_435_200.0)
    with pytest.raises(ReplayCacheUnavailable):
        cache.first_use("iss", "jti-1", 1_795_435_500.0)
    shutil.rmtree(database)  # the database comes back: the table is created on the next call
    assert cache.first_use("iss", "jti-1", 1_795_435_500.0) is True
    assert cache.first_use("iss", "jti-1", 1_795_435_500.0) is False


def test_service_with_a_working_database_accepts_a_token_once(tmp_path: Path, key: SigningKey, kb: Any) -> None:
    client = create_app(_settings(tmp_path, key, f"sqlite:///{tmp_path / 'db.sqlite3'}"), kb=kb).test_client()
    token = key.sign(claims(time.time(), aud=BASE + DISCOVERY))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(DISCOVERY, headers=headers).status_code == 200
    assert client.get(DISCOVERY, headers=headers).status_code == 401  # replayed
