"""The feedback store: cards shown and clinician feedback, in SQLite or PostgreSQL (SQLAlchemy Core).

``DATABASE_URL`` picks the database: ``sqlite:///path`` (embedded, the default) or ``postgresql://...``
(driven by psycopg 3). The schema is created or migrated when the store opens. Nothing here holds
patient data: a card is known by its uuid, rule topic, indicator and the hook call that produced it.

Idempotency: a feedback entry is identified by (card uuid, outcome, outcome timestamp). A client that
re-sends the same report (the spec allows it) repeats all three, so the repeat is recognised and ignored;
a clinician who later changes their mind produces a new outcome or timestamp, which is kept.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: concurrent first opens of a new SQLite file are then not serialised
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SQLITE_BUSY_TIMEOUT_MS = 5000
MAX_COMMENT_CHARS = 4000
_PG_MIGRATION_LOCK = 0x6B65_7461  # advisory lock key: one migrating process at a time


class FeedbackStoreError(RuntimeError):
    """The store cannot be opened or used; the message says why (never contains credentials)."""


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the feedback store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

metadata = MetaData()

schema_version = Table(
    "ketamine_cds_schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

cards_shown = Table(
    "ketamine_cds_cards_shown",
    metadata,
    Column("card_uuid", String(128), primary_key=True),
    Column("service_id", String(128), nullable=False),
    Column("hook", String(64), nullable=False),
    Column("hook_instance", String(128), nullable=False),
    Column("topic", String(128), nullable=True),
    Column("indicator", String(16), nullable=False),
    Column("shown_at", UTCDateTime, nullable=False),
    Index("ix_ketamine_cds_cards_shown_shown_at", "shown_at"),
)

feedback = Table(
    "ketamine_cds_feedback",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("card_uuid", String(128), nullable=False),
    Column("service_id", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("outcome_timestamp", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("card_known", Boolean, nullable=False),
    Column("reason_system", Text, nullable=True),
    Column("reason_code", Text, nullable=True),
    Column("reason_display", Text, nullable=True),
    Column("user_comment", Text, nullable=True),
    Column("accepted_suggestions", Text, nullable=True),  # JSON array of suggestion uuids
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_ketamine_cds_feedback_natural"),
    Index("ix_ketamine_cds_feedback_received_at", "received_at"),
)


def _migrate_to_1(conn: Connection) -> None:
    for table in (cards_shown, feedback):
        table.create(conn, checkfirst=True)


# MIGRATIONS[n - 1] brings the schema from version n - 1 to n. Append only; never edit a released step.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_to_1,)


@dataclass(frozen=True)
class CardShown:
    """One card returned to a CDS client."""

    card_uuid: str
    service_id: str
    hook: str
    hook_instance: str
    topic: str | None
    indicator: str
    shown_at: datetime


@dataclass(frozen=True)
class FeedbackEntry:
    """One validated feedback item (``feedback[i]`` of the request body)."""

    card_uuid: str
    outcome: str  # accepted | overridden
    outcome_timestamp: datetime
    reason_system: str | None = None
    reason_code: str | None = None
    reason_display: str | None = None
    user_comment: str | None = None
    accepted_suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedbackResult:
    """What happened to the entries of one POST."""

    stored: int
    duplicates: int
    unknown_cards: int


@dataclass(frozen=True)
class PurgeResult:
    cards_deleted: int
    feedback_deleted: int


@dataclass(frozen=True)
class FeedbackRow:
    """A stored feedback entry with its card's topic (None when the card is unknown)."""

    card_uuid: str
    topic: str | None
    card_known: bool
    outcome: str
    outcome_timestamp: datetime
    received_at: datetime
    reason_system: str | None
    reason_code: str | None
    reason_display: str | None
    has_comment: bool


def engine_url(database_url: str) -> str:
    """Map ``DATABASE_URL`` to a SQLAlchemy URL: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    if database_url.startswith(("postgresql+psycopg://", "sqlite://")):
        return database_url
    scheme = database_url.split(":", 1)[0] if ":" in database_url else "(none)"
    raise FeedbackStoreError(
        f"DATABASE_URL must start with sqlite:/// or postgresql:// (got scheme {scheme!r})"
    )


def sqlite_file(database_url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for PostgreSQL or an in-memory database)."""
    url = make_url(engine_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def _reason(exc: SQLAlchemyError, *, detail: bool = False) -> str:
    """The driver error class (and with ``detail`` the first line of its message, for logs and the CLI).

    Driver messages name host and port, never the password; the SQL statement is not included.
    """
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    if not detail:
        return name
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    return f"{name}: {first}" if first else name


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


class FeedbackStore:
    """Thread-safe access to the feedback tables. Open with :meth:`open`; close when done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_engine = engine.execution_options(ketamine_write=True)
        # SQLite has one writer at a time: queue this process's writers here rather than in busy-waits.
        self._sqlite_lock: AbstractContextManager[Any] = (
            threading.RLock() if self.dialect == "sqlite" else nullcontext()
        )
        _dispose_after_fork(self)

    @classmethod
    def open(cls, database_url: str) -> FeedbackStore:
        """Connect, create or migrate the schema, and return the store."""
        url = engine_url(database_url)
        try:
            engine = make_engine(url)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise FeedbackStoreError(f"invalid DATABASE_URL {_safe_url(url)}: {exc}") from exc
        store = cls(engine)
        try:
            with first_time_setup(engine):
                store.migrate()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise FeedbackStoreError(
                f"feedback store {_safe_url(url)} unavailable: {_reason(exc, detail=True)}"
            ) from exc
        except (sqlite3.Error, OSError) as exc:  # the WAL switch on a raw connection; a file SQLite cannot write
            engine.dispose()
            raise FeedbackStoreError(
                f"feedback store {_safe_url(url)} unavailable: {type(exc).__name__}: {exc}"
            ) from exc
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._sqlite_lock, self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._sqlite_lock, self.engine.connect() as conn:
            yield conn

    # schema ---------------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION`; return the version found before."""
        with self._writing() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            if current > SCHEMA_VERSION:
                raise FeedbackStoreError(
                    f"feedback database schema is version {current}, newer than this release "
                    f"({SCHEMA_VERSION}): upgrade ketamine-cds"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(schema_version.insert().values(version=version, applied_at=datetime.now(UTC)))
                log.info("feedback store schema migrated to version %d", version)
            return current

    def schema_version(self) -> int:
        with self._reading() as conn:
            return conn.execute(select(func.max(schema_version.c.version))).scalar() or 0

    def ping(self) -> str | None:
        """None when the database answers, else a short reason (no credentials)."""
        try:
            with self._reading() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return f"feedback store unavailable: {_reason(exc)}"
        return None

    # writes ---------------------------------------------------------------------------------------

    def record_cards(self, cards: Sequence[CardShown]) -> None:
        """Store cards shown (a card uuid seen again is ignored) and mark earlier feedback for them known."""
        if not cards:
            return
        rows = [
            {
                "card_uuid": c.card_uuid,
                "service_id": c.service_id,
                "hook": c.hook,
                "hook_instance": c.hook_instance,
                "topic": c.topic,
                "indicator": c.indicator,
                "shown_at": c.shown_at,
            }
            for c in cards
        ]
        uuids = sorted({c.card_uuid for c in cards})
        with self._writing() as conn:
            conn.execute(self._insert_ignore(cards_shown, ["card_uuid"]), rows)
            conn.execute(
                update(feedback)
                .where(feedback.c.card_uuid.in_(uuids), feedback.c.card_known.is_(False))
                .values(card_known=True)
            )

    def add_feedback(
        self, service_id: str, entries: Sequence[FeedbackEntry], received_at: datetime
    ) -> FeedbackResult:
        """Store feedback entries; an entry already stored (same natural key) is counted as a duplicate."""
        stored = duplicates = unknown = 0
        uuids = sorted({e.card_uuid for e in entries})
        with self._writing() as conn:
            known = set(
                conn.execute(select(cards_shown.c.card_uuid).where(cards_shown.c.card_uuid.in_(uuids))).scalars()
            )
            # RETURNING says whether the row went in (rowcount is unreliable across drivers for upserts).
            statement = self._insert_ignore(feedback, ["card_uuid", "outcome", "outcome_timestamp"]).returning(
                feedback.c.id
            )
            for entry in entries:
                is_known = entry.card_uuid in known
                comment = entry.user_comment[:MAX_COMMENT_CHARS] if entry.user_comment else None
                result = conn.execute(
                    statement,
                    {
                        "card_uuid": entry.card_uuid,
                        "service_id": service_id,
                        "outcome": entry.outcome,
                        "outcome_timestamp": entry.outcome_timestamp,
                        "received_at": received_at,
                        "card_known": is_known,
                        "reason_system": entry.reason_system,
                        "reason_code": entry.reason_code,
                        "reason_display": entry.reason_display,
                        "user_comment": comment,
                        "accepted_suggestions": (
                            json.dumps(list(entry.accepted_suggestions)) if entry.accepted_suggestions else None
                        ),
                    },
                )
                if result.first() is not None:
                    stored += 1
                    unknown += 0 if is_known else 1
                else:
                    duplicates += 1
        return FeedbackResult(stored=stored, duplicates=duplicates, unknown_cards=unknown)

    def purge(self, older_than: datetime) -> PurgeResult:
        """Delete cards shown and feedback received before ``older_than``."""
        with self._writing() as conn:
            cards = conn.execute(delete(cards_shown).where(cards_shown.c.shown_at < older_than)).rowcount
            fb = conn.execute(delete(feedback).where(feedback.c.received_at < older_than)).rowcount
        return PurgeResult(cards_deleted=cards, feedback_deleted=fb)

    def _insert_ignore(self, table: Table, key: list[str]) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)

    # reads (report) -------------------------------------------------------------------------------

    def shown_counts(self, since: datetime | None) -> list[tuple[str | None, str, int]]:
        """(topic, indicator, number of cards shown) since ``since``."""
        query = select(cards_shown.c.topic, cards_shown.c.indicator, func.count()).group_by(
            cards_shown.c.topic, cards_shown.c.indicator
        )
        if since is not None:
            query = query.where(cards_shown.c.shown_at >= since)
        with self._reading() as conn:
            return [(r[0], r[1], int(r[2])) for r in conn.execute(query)]

    def feedback_rows(self, since: datetime | None) -> list[FeedbackRow]:
        """Feedback for cards shown since ``since``, plus feedback for unknown cards received since then."""
        has_comment = (feedback.c.user_comment.is_not(None)) & (feedback.c.user_comment != "")
        joined = feedback.outerjoin(cards_shown, cards_shown.c.card_uuid == feedback.c.card_uuid)
        query = select(
            feedback.c.card_uuid,
            cards_shown.c.topic,
            cards_shown.c.card_uuid.is_not(None),
            feedback.c.outcome,
            feedback.c.outcome_timestamp,
            feedback.c.received_at,
            feedback.c.reason_system,
            feedback.c.reason_code,
            feedback.c.reason_display,
            has_comment,
        ).select_from(joined)
        if since is not None:
            query = query.where(
                (cards_shown.c.shown_at >= since)
                | (cards_shown.c.card_uuid.is_(None) & (feedback.c.received_at >= since))
            )
        query = query.order_by(feedback.c.card_uuid, feedback.c.outcome_timestamp, feedback.c.id)
        with self._reading() as conn:
            return [
                FeedbackRow(
                    card_uuid=r[0],
                    topic=r[1],
                    card_known=bool(r[2]),
                    outcome=r[3],
                    outcome_timestamp=r[4],
                    received_at=r[5],
                    reason_system=r[6],
                    reason_code=r[7],
                    reason_display=r[8],
                    has_comment=bool(r[9]),
                )
                for r in conn.execute(query)
            ]

    def feedback_flags(self) -> dict[str, bool]:
        """card uuid -> stored ``card_known`` flag (for diagnostics and tests)."""
        with self._reading() as conn:
            rows = conn.execute(select(feedback.c.card_uuid, feedback.c.card_known))
            return {r[0]: bool(r[1]) for r in rows}


def make_engine(database_url: str) -> Engine:
    """The engine for ``DATABASE_URL`` (also used by the JWT replay cache, which shares the database).

    A SQLite file is switched to WAL (once, by :func:`first_time_setup`); every connection waits up to
    ``SQLITE_BUSY_TIMEOUT_MS`` for a lock, and write transactions (``ketamine_write``) begin IMMEDIATE.
    """
    url = engine_url(database_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        connect_args={"connect_timeout": 5},
    )


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
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("ketamine_write") else "BEGIN")

    return engine


def _dispose_after_fork(store: FeedbackStore) -> None:
    """A forked worker (gunicorn --preload) must not reuse the parent's database connections."""
    ref = weakref.ref(store)

    def _after_fork() -> None:
        target = ref()
        if target is not None:
            target.engine.dispose(close=False)

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
