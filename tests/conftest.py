"""Shared test fixtures: the fixed clock (``tests.clock``), the bundled knowledge base, and the databases.

Every feedback-store test runs on SQLite (a temp file) and on a real PostgreSQL server. PostgreSQL comes from
``DATABASE_URL_TEST`` (``eval "$(bash scripts/postgres-for-tests.sh)"``). When it is unset the PostgreSQL cases
are skipped locally, and FAIL when ``CI=true`` so CI cannot skip them silently. Each PostgreSQL test gets its
own schema (``search_path``), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from cds_service.database import engine_url
from cds_service.feedback.store import FeedbackStore
from tests.clock import NOW


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def kb():  # type: ignore[no-untyped-def]
    from cds_service.knowledge.loader import load_knowledge

    return load_knowledge()


def _postgres_base_url() -> str:
    url = os.environ.get("DATABASE_URL_TEST")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("DATABASE_URL_TEST is not set: .ci/run must start PostgreSQL (scripts/postgres-for-tests.sh)")
        pytest.skip("DATABASE_URL_TEST not set (eval \"$(bash scripts/postgres-for-tests.sh)\")")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
        return
    base = _postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(engine_url(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[FeedbackStore]:
    opened = FeedbackStore.open(database_url)
    try:
        yield opened
    finally:
        opened.close()
