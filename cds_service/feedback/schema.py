"""The feedback store's tables and their migrations, applied when the store opens (SQLite or PostgreSQL).

``MIGRATIONS[n - 1]`` brings the schema from version n - 1 to n; the versions applied are kept in
``ketamine_cds_schema_version``. Append only; never edit a released step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.types import TypeDecorator

from cds_service.database import DatabaseError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
KB_VERSION_CHARS = 64
_PG_MIGRATION_LOCK = 0x6B65_7461  # advisory lock key: one migrating process at a time


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
    # the version of the knowledge base that made the card (``Knowledge.version``; None: recorded before 2)
    Column("kb_version", String(KB_VERSION_CHARS), nullable=True),
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


def _migrate_to_2(conn: Connection) -> None:
    """Cards shown carry the knowledge-base version that made them (a database made by step 1 of this release
    already has the column: step 1 creates the tables as they are now)."""
    columns = {column["name"] for column in inspect(conn).get_columns(cards_shown.name)}
    if "kb_version" not in columns:
        conn.execute(text(f"ALTER TABLE {cards_shown.name} ADD COLUMN kb_version VARCHAR({KB_VERSION_CHARS})"))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_to_1, _migrate_to_2)


def migrate(conn: Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` in the transaction of ``conn``; return the version found."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
    if current > SCHEMA_VERSION:
        raise DatabaseError(
            f"feedback database schema is version {current}, newer than this release ({SCHEMA_VERSION}): "
            "upgrade ketamine-cds"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(schema_version.insert().values(version=version, applied_at=datetime.now(UTC)))
        log.info("feedback store schema migrated to version %d", version)
    return current


def current_version(conn: Connection) -> int:
    return conn.execute(select(func.max(schema_version.c.version))).scalar() or 0


