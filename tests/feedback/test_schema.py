"""Schema migrations on SQLite and PostgreSQL: a database made by an earlier release keeps working, and every card
recorded from now on carries the version of the knowledge base that made it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Column, MetaData, Table, create_engine, inspect, select

from cds_service.database import engine_url
from cds_service.feedback.schema import SCHEMA_VERSION, cards_shown, feedback, schema_version
from cds_service.feedback.store import CardShown, FeedbackEntry, FeedbackStore
from tests.clock import NOW


def make_version_1(database_url: str) -> None:
    """The database as release 1 left it: no ``kb_version`` column, one card shown and its feedback."""
    engine = create_engine(engine_url(database_url))
    old = MetaData()
    columns = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
               for c in cards_shown.columns if c.name != "kb_version"]  # fmt: skip
    v1_cards = Table(cards_shown.name, old, *columns)
    v1_versions = schema_version.to_metadata(old)
    v1_feedback = feedback.to_metadata(old)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(v1_versions.insert().values(version=1, applied_at=NOW - timedelta(days=30)))
        conn.execute(v1_cards.insert().values(card_uuid="old-card", service_id="ketamine-order-sign", hook="order-sign",
                                              hook_instance="hi-0", topic="psychosis", indicator="critical",
                                              shown_at=NOW - timedelta(days=30)))  # fmt: skip
        conn.execute(v1_feedback.insert().values(card_uuid="old-card", service_id="ketamine-order-sign",
                                                 outcome="overridden", outcome_timestamp=NOW - timedelta(days=29),
                                                 received_at=NOW - timedelta(days=29), card_known=True))  # fmt: skip
    engine.dispose()


def test_a_release_1_database_is_migrated_at_open_and_keeps_its_records(database_url: str) -> None:
    make_version_1(database_url)
    store = FeedbackStore.open(database_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 2
        with store.engine.connect() as conn:
            assert "kb_version" in {c["name"] for c in inspect(conn).get_columns(cards_shown.name)}
            assert conn.execute(select(schema_version.c.version).order_by(schema_version.c.version)).scalars().all() \
                == [1, 2]
        store.record_cards([CardShown("new-card", "ketamine-order-sign", "order-sign", "hi-1", "psychosis",
                                      "critical", NOW, kb_version="2026.11.1+site.abc")])  # fmt: skip
        store.add_feedback("ketamine-order-sign", [FeedbackEntry("new-card", "accepted", NOW)], received_at=NOW)
        with store.engine.connect() as conn:
            rows = dict(conn.execute(select(cards_shown.c.card_uuid, cards_shown.c.kb_version)).all())
        assert rows == {"old-card": None, "new-card": "2026.11.1+site.abc"}
        assert store.shown_counts(None) == [("psychosis", "critical", 2)]
        assert [r.card_known for r in store.feedback_rows(None)] == [True, True]
    finally:
        store.close()


def test_opening_a_migrated_database_again_changes_nothing(database_url: str) -> None:
    make_version_1(database_url)
    FeedbackStore.open(database_url).close()
    again = FeedbackStore.open(database_url)
    try:
        assert again.migrate() == SCHEMA_VERSION
    finally:
        again.close()


def test_a_new_database_is_made_at_the_current_version_with_the_column(database_url: str) -> None:
    store = FeedbackStore.open(database_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(select(schema_version.c.version).order_by(schema_version.c.version)).scalars().all() \
                == list(range(1, SCHEMA_VERSION + 1))
            assert "kb_version" in {c["name"] for c in inspect(conn).get_columns(cards_shown.name)}
    finally:
        store.close()
