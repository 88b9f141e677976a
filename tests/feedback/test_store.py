"""The feedback store on SQLite and PostgreSQL: schema, idempotency, unknown cards, purge, concurrency."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from cds_service.database import engine_url
from cds_service.feedback.schema import cards_shown, feedback, schema_version
from cds_service.feedback.store import (
    SCHEMA_VERSION,
    CardShown,
    FeedbackEntry,
    FeedbackStore,
    FeedbackStoreError,
)
from cds_service.feedback.validation import parse_rfc3339


def card(uuid: str, now: datetime, topic: str | None = "hypertension-uncontrolled", **kw: object) -> CardShown:
    values: dict[str, object] = {
        "card_uuid": uuid,
        "service_id": "ketamine-order-sign",
        "hook": "order-sign",
        "hook_instance": "hi-1",
        "topic": topic,
        "indicator": "critical",
        "shown_at": now,
    }
    values.update(kw)
    return CardShown(**values)  # type: ignore[arg-type]


def overridden(uuid: str, at: datetime, code: str | None = "benefit-outweighs-risk") -> FeedbackEntry:
    return FeedbackEntry(card_uuid=uuid, outcome="overridden", outcome_timestamp=at, reason_code=code)


def count(store: FeedbackStore, table=feedback) -> int:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_schema_is_created_at_open_and_reopening_does_not_migrate_again(database_url: str) -> None:
    first = FeedbackStore.open(database_url)
    assert first.schema_version() == SCHEMA_VERSION
    first.close()
    second = FeedbackStore.open(database_url)
    assert second.migrate() == SCHEMA_VERSION  # the version found: nothing left to do
    with second.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema_version)).scalar_one() == SCHEMA_VERSION
    second.close()


def test_a_database_from_a_newer_release_is_refused(store: FeedbackStore, database_url: str, now) -> None:
    with store.engine.begin() as conn:
        # the newest row says a later release migrated the database
        conn.execute(update(schema_version).where(schema_version.c.version == SCHEMA_VERSION)
                     .values(version=SCHEMA_VERSION + 1))
    with pytest.raises(FeedbackStoreError, match="newer than this release"):
        FeedbackStore.open(database_url)


def test_the_same_feedback_twice_is_stored_once(store: FeedbackStore, now) -> None:
    store.record_cards([card("c1", now)])
    first = store.add_feedback("ketamine-order-sign", [overridden("c1", now)], received_at=now)
    again = store.add_feedback("ketamine-order-sign", [overridden("c1", now)], received_at=now)
    assert (first.stored, first.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 1)
    assert count(store) == 1


def test_duplicates_inside_one_post_are_stored_once(store: FeedbackStore, now) -> None:
    result = store.add_feedback("s", [overridden("c1", now), overridden("c1", now)], received_at=now)
    assert (result.stored, result.duplicates) == (1, 1)


def test_the_same_instant_written_differently_is_a_duplicate(store: FeedbackStore, now) -> None:
    stamps = ["2026-11-23T12:00:00Z", "2026-11-23T12:00:00.000Z", "2026-11-23T13:00:00+01:00"]
    results = [
        store.add_feedback("s", [overridden("c1", parse_rfc3339(s))], received_at=now)  # type: ignore[arg-type]
        for s in stamps
    ]
    assert [r.stored for r in results] == [1, 0, 0]


def test_a_changed_decision_is_kept_as_a_new_entry(store: FeedbackStore, now) -> None:
    store.add_feedback("s", [overridden("c1", now)], received_at=now)
    later = FeedbackEntry("c1", "accepted", now + timedelta(minutes=1), accepted_suggestions=("sg1",))
    result = store.add_feedback("s", [later], received_at=now)
    assert result.stored == 1
    assert count(store) == 2


def test_feedback_for_an_unknown_card_is_stored_and_flagged(store: FeedbackStore, now) -> None:
    store.record_cards([card("known", now)])
    result = store.add_feedback("s", [overridden("known", now), overridden("stranger", now)], received_at=now)
    assert (result.stored, result.unknown_cards) == (2, 1)
    assert store.feedback_flags() == {"known": True, "stranger": False}


def test_a_card_recorded_after_its_feedback_clears_the_flag(store: FeedbackStore, now) -> None:
    # the background writer may lag behind a very fast clinician
    store.add_feedback("s", [overridden("late", now)], received_at=now)
    assert store.feedback_flags() == {"late": False}
    store.record_cards([card("late", now)])
    assert store.feedback_flags() == {"late": True}


def test_recording_a_card_twice_keeps_the_first_record(store: FeedbackStore, now) -> None:
    store.record_cards([card("c1", now, indicator="critical")])
    store.record_cards([card("c1", now + timedelta(hours=1), indicator="info")])
    assert store.shown_counts(None) == [("hypertension-uncontrolled", "critical", 1)]


def test_card_records_hold_no_patient_data() -> None:
    assert {c.name for c in cards_shown.columns} == {
        "card_uuid", "service_id", "hook", "hook_instance", "topic", "indicator", "shown_at", "kb_version"
    }


def test_purge_deletes_only_older_records(store: FeedbackStore, now) -> None:
    old, recent = now - timedelta(days=800), now - timedelta(days=10)
    store.record_cards([card("old", old), card("new", recent)])
    store.add_feedback("s", [overridden("old", old)], received_at=old)
    store.add_feedback("s", [overridden("new", recent)], received_at=recent)
    result = store.purge(now - timedelta(days=730))
    assert (result.cards_deleted, result.feedback_deleted) == (1, 1)
    assert store.shown_counts(None) == [("hypertension-uncontrolled", "critical", 1)]
    assert [r.card_uuid for r in store.feedback_rows(None)] == ["new"]


def test_timestamps_come_back_as_utc(store: FeedbackStore, now) -> None:
    local = parse_rfc3339("2026-11-23T14:30:00+02:00")
    assert local is not None
    store.record_cards([card("c1", local)])
    store.add_feedback("s", [overridden("c1", local)], received_at=local)
    row = store.feedback_rows(None)[0]
    assert row.outcome_timestamp == local
    assert row.outcome_timestamp.utcoffset() == timedelta(0)
    assert row.outcome_timestamp.hour == 12


def test_concurrent_writers_lose_nothing_and_store_duplicates_once(store: FeedbackStore, now) -> None:
    threads, per_thread = 6, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                store.record_cards([card(f"t{t}-c{i}", now)])
                # every thread also reports the same shared card: exactly one entry must survive
                store.add_feedback("s", [overridden(f"t{t}-c{i}", now), overridden("shared", now)], received_at=now)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert count(store, cards_shown) == threads * per_thread
    assert count(store) == threads * per_thread + 1


_WORKER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from cds_service.feedback.store import CardShown, FeedbackEntry, FeedbackStore

    url, name = sys.argv[1], sys.argv[2]
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # the suite's clock (tests.clock), in a subprocess
    store = FeedbackStore.open(url)  # every worker migrates at start: the schema is created once
    for i in range(150):
        uuid = f"{name}-c{i}"
        store.record_cards([CardShown(uuid, "s", "order-sign", "hi", "psychosis", "critical", now)])
        entries = [FeedbackEntry(uuid, "overridden", now), FeedbackEntry("shared", "overridden", now)]
        store.add_feedback("s", entries, received_at=now)
    store.close()
    """
)


def test_several_processes_share_one_database(database_url: str) -> None:
    # gunicorn runs several worker processes on the same database (for SQLite: the same file)
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, database_url, f"w{n}"], stderr=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], errors
    opened = FeedbackStore.open(database_url)
    try:
        assert opened.schema_version() == SCHEMA_VERSION
        assert count(opened, cards_shown) == 450
        assert count(opened) == 451
    finally:
        opened.close()


def test_database_url_schemes() -> None:
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(FeedbackStoreError, match="mysql"):
        engine_url("mysql://u:pw@h/db")


def test_an_unreachable_server_is_reported_without_the_password() -> None:
    with pytest.raises(FeedbackStoreError) as info:
        FeedbackStore.open("postgresql://someone:s3cret@127.0.0.1:1/nothing")
    assert "s3cret" not in str(info.value)
    assert "unavailable" in str(info.value)


def test_sqlite_file_uses_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    opened = FeedbackStore.open(f"sqlite:///{tmp_path / 'sub' / 'fb.sqlite3'}")
    with opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    opened.close()


_OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cds_service.feedback.store import FeedbackStore
    from cds_service.security.replay import SqlReplayCache

    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ready.touch()
    while not go.exists():  # start together: the race is on the very first open of a new file
        time.sleep(0.001)
    if sys.argv[4] == "replay":
        SqlReplayCache(url)  # the JWT replay cache shares DATABASE_URL with the feedback store
    else:
        FeedbackStore.open(url).close()
    """
)


def test_processes_opening_a_new_sqlite_file_at_the_same_moment_all_succeed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # gunicorn workers without --preload all start at once on a file that does not exist yet: the switch to
    # WAL and the schema creation must not fail with "database is locked" in any of them
    for round_ in range(3):
        work = tmp_path / f"round{round_}"
        work.mkdir()
        url = f"sqlite:///{work / 'feedback.sqlite3'}"
        go = work / "go"
        kinds = ["store", "replay"] * 3
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, url, str(work / f"ready{n}"), str(go), kind],
                stderr=subprocess.PIPE, text=True,
            )
            for n, kind in enumerate(kinds)
        ]
        while not all((work / f"ready{n}").exists() for n in range(len(kinds))):
            assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
            time.sleep(0.01)
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * len(kinds), errors
        opened = FeedbackStore.open(url)
        with opened.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert opened.schema_version() == SCHEMA_VERSION
        opened.close()
