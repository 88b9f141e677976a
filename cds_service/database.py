"""The database engine of a ``DATABASE_URL``: SQLite (embedded, the default) or PostgreSQL (psycopg 3).

Used by the feedback store (``feedback.store``) and the JWT replay cache (``security.replay``), which share
the database. Set-up that every user of a SQLite file needs is here: WAL (switched once, serialised across
processes by :func:`first_time_setup`), the busy timeout, write transactions that begin IMMEDIATE, and no
connection reused in a forked worker.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: concurrent first opens of a new SQLite file are then not serialised
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE_OPTION = "ketamine_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)


class DatabaseError(RuntimeError):
    """The database cannot be opened or used; the message says why (never contains credentials)."""


def engine_url(database_url: str) -> str:
    """Map ``DATABASE_URL`` to a SQLAlchemy URL: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    if database_url.startswith(("postgresql+psycopg://", "sqlite://")):
        return database_url
    scheme = database_url.split(":", 1)[0] if ":" in database_url else "(none)"
    raise DatabaseError(
        f"DATABASE_URL must start with sqlite:/// or postgresql:// (got scheme {scheme!r})"
    )


def sqlite_file(database_url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for PostgreSQL or an in-memory database)."""
    url = make_url(engine_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def error_reason(exc: SQLAlchemyError, *, detail: bool = False) -> str:
    """The driver error class (and with ``detail`` the first line of its message, for logs and the CLI).

    Driver messages name host and port, never the password; the SQL statement is not included.
    """
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    if not detail:
        return name
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    return f"{name}: {first}" if first else name


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def make_engine(database_url: str) -> Engine:
    """The engine for ``DATABASE_URL``; connections are not reused after a fork.

    A SQLite file is switched to WAL (once, by :func:`first_time_setup`); every connection waits up to
    ``SQLITE_BUSY_TIMEOUT_MS`` for a lock, and write transactions (``ketamine_write``) begin IMMEDIATE.
    """
    url = engine_url(database_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, parsed.database)
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            pool_timeout=5,
            connect_args={"connect_timeout": 5},
        )
    _dispose_after_fork(engine)
    return engine


@contextmanager
def first_time_setup(engine: Engine) -> Iterator[None]:
    """Serialise set-up (WAL switch, schema creation) of a SQLite file across the processes that open it.

    gunicorn workers start together on a file that may not exist yet. While a new file is still in rollback
    mode, two connections switching it to WAL can deadlock, and SQLite then answers "database is locked" at
    once instead of waiting for the busy timeout. An exclusive ``flock`` on a side file (``<db>-setup-lock``,
    next to SQLite's own ``-wal`` and ``-shm``) makes the processes take turns; the WAL switch, persistent in
    the file, happens here and not on every connection. PostgreSQL and in-memory SQLite need nothing
    (migrations take an advisory lock).
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:") or fcntl is None:
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + "-setup-lock")
    try:
        lock = open(lock_path, "a+b")  # noqa: SIM115 (closed by the with block below)
    except OSError:  # a read-only directory: SQLite will say what is wrong when the store is used
        yield
        return
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes, or if the process dies
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # outside a transaction (isolation_level None)
            cursor.close()
        finally:
            raw.close()
        yield


def _sqlite_engine(url: str, database: str | None) -> Engine:
    in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
    if in_memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        with suppress(OSError):  # a directory that cannot be made: SQLite names the problem when it connects
            Path(database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL itself is set once, in first_time_setup
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock up front: a deferred transaction that reads then writes can fail at once
        # with SQLITE_BUSY under WAL instead of waiting for the busy timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")

    return engine


def _dispose_after_fork(engine: Engine) -> None:
    """A forked worker (gunicorn --preload) must not reuse the parent's database connections."""
    ref = weakref.ref(engine)

    def _after_fork() -> None:
        target = ref()
        if target is not None:
            target.dispose(close=False)

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
