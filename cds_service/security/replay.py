"""``jti`` replay cache: a JWT id is accepted once per issuer until the token expires.

The SQL cache (SQLAlchemy Core, own table, SQLite or PostgreSQL, on an engine of ``database`` as the feedback store)
is shared by every gunicorn worker and replica that uses the same database; the in-memory cache is for
tests and single-process sandboxes.
Keys are SHA-256 digests of ``iss`` and ``jti``, so the table holds no token content.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds_service.database import first_time_setup, make_engine

TABLE_NAME = "ketamine_cds_jwt_replay"
_PG_CREATE_LOCK = 0x6B65_7462  # advisory lock key (the feedback store's migrations use ...61)

_metadata = sa.MetaData()
replay_table = sa.Table(
    TABLE_NAME,
    _metadata,
    sa.Column("token_key", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)


class ReplayCacheUnavailable(Exception):
    """The replay cache's database did not answer: the token cannot be checked, so it is not accepted."""


class ReplayCache(Protocol):
    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Record the token id; True the first time, False when it was seen before and has not expired."""
        ...


def token_key(iss: str, jti: str) -> str:
    return hashlib.sha256(f"{iss}\x00{jti}".encode()).hexdigest()


class MemoryReplayCache:
    """Process-local replay cache (tests, single-process sandboxes)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        now = self._clock()
        key = token_key(iss, jti)
        with self._lock:
            if len(self._seen) > 1024:
                self._seen = {k: exp for k, exp in self._seen.items() if exp >= now}
            previous = self._seen.get(key)
            if previous is not None and previous >= now:
                return False
            self._seen[key] = expires_at
            return True


class SqlReplayCache:
    """Replay cache in a SQL table; the primary key makes "first use" atomic across processes.

    Construction never connects: the table is created on first use (retried on the next call if the
    database did not answer), and a database that does not answer raises ``ReplayCacheUnavailable``.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
        purge_every_seconds: float = 60.0,
    ) -> None:
        if engine is None:
            if database_url is None:
                raise ValueError("give database_url or engine")
            engine = make_engine(database_url)
        self._engine = engine
        self._clock = clock
        self._purge_every = purge_every_seconds
        self._last_purge = 0.0
        # No connection here: the table is created on first use, so that the service starts (and /readyz
        # reports the database) while PostgreSQL is down; calls that need the cache then get 503.
        self._table_ready = False
        self._setup_lock = threading.Lock()

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        with self._setup_lock:
            if self._table_ready:
                return
            engine = self._engine
            with first_time_setup(engine), engine.begin() as conn:
                if engine.dialect.name == "postgresql":  # workers starting together: one CREATE TABLE at a time
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CREATE_LOCK})
                _metadata.create_all(conn, tables=[replay_table], checkfirst=True)
            self._table_ready = True

    @property
    def engine(self) -> Engine:
        return self._engine

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        try:
            return self._first_use(iss, jti, expires_at)
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:  # sqlite3: the WAL switch of first use
            raise ReplayCacheUnavailable(type(exc).__name__) from exc

    def _first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        self._ensure_table()
        now = self._clock()
        key = token_key(iss, jti)
        if now - self._last_purge >= self._purge_every:
            self.purge(now)
        if self._insert(key, expires_at):
            return True
        # Seen before: accept again only if that earlier entry has already expired.
        with self._engine.begin() as conn:
            removed = conn.execute(
                sa.delete(replay_table).where(replay_table.c.token_key == key, replay_table.c.expires_at < int(now))
            ).rowcount
        return bool(removed) and self._insert(key, expires_at)

    def purge(self, now: float | None = None) -> int:
        """Delete expired entries; returns how many."""
        self._ensure_table()
        now = self._clock() if now is None else now
        self._last_purge = now
        with self._engine.begin() as conn:
            return conn.execute(sa.delete(replay_table).where(replay_table.c.expires_at < int(now))).rowcount

    def _insert(self, key: str, expires_at: float) -> bool:
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(replay_table).values(token_key=key, expires_at=int(expires_at) + 1))
        except IntegrityError:
            return False
        return True
