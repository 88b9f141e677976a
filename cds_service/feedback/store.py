"""The feedback store: cards shown and clinician feedback, in SQLite or PostgreSQL (SQLAlchemy Core).

``DATABASE_URL`` picks the database (``database``): ``sqlite:///path`` (embedded, the default) or
``postgresql://...`` (driven by psycopg 3). The schema is created or migrated when the store opens
(``feedback.schema``). Nothing here holds patient data: a card is known by its uuid, rule topic, indicator,
the hook call that produced it and the version of the knowledge base that made it.

Idempotency: a feedback entry is identified by (card uuid, outcome, outcome timestamp). A client that
re-sends the same report (the spec allows it) repeats all three, so the repeat is recognised and ignored;
a clinician who later changes their mind produces a new outcome or timestamp, which is kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, Table, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cds_service.database import (
    WRITE_OPTION,
    DatabaseError,
    engine_url,
    error_reason,
    first_time_setup,
    make_engine,
    safe_url,
)
from cds_service.feedback import schema
from cds_service.feedback.schema import cards_shown, feedback

MAX_COMMENT_CHARS = 4000
SCHEMA_VERSION: Final = schema.SCHEMA_VERSION
FeedbackStoreError = DatabaseError  # the store cannot be opened or used; the message says why (no credentials)


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
    kb_version: str | None = None  # the version of the knowledge base that made the card


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


class FeedbackStore:
    """Thread-safe access to the feedback tables. Open with :meth:`open`; close when done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        # SQLite has one writer at a time: queue this process's writers here rather than in busy-waits.
        self._sqlite_lock: AbstractContextManager[Any] = (
            threading.RLock() if self.dialect == "sqlite" else nullcontext()
        )

    @classmethod
    def open(cls, database_url: str) -> FeedbackStore:
        """Connect, create or migrate the schema, and return the store."""
        url = engine_url(database_url)
        try:
            engine = make_engine(url)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise FeedbackStoreError(f"invalid DATABASE_URL {safe_url(url)}: {exc}") from exc
        store = cls(engine)
        try:
            with first_time_setup(engine):
                store.migrate()
        except SQLAlchemyError as exc:
            engine.dispose()
            raise FeedbackStoreError(
                f"feedback store {safe_url(url)} unavailable: {error_reason(exc, detail=True)}"
            ) from exc
        except (sqlite3.Error, OSError) as exc:  # the WAL switch on a raw connection; a file SQLite cannot write
            engine.dispose()
            raise FeedbackStoreError(
                f"feedback store {safe_url(url)} unavailable: {type(exc).__name__}: {exc}"
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
            return schema.migrate(conn)

    def schema_version(self) -> int:
        with self._reading() as conn:
            return schema.current_version(conn)

    def ping(self) -> str | None:
        """None when the database answers, else a short reason (no credentials)."""
        try:
            with self._reading() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return f"feedback store unavailable: {error_reason(exc)}"
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
                "kb_version": c.kb_version,
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
