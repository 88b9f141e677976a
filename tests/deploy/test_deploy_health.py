"""/healthz and /readyz: liveness never depends on the store; readiness reports each failing check."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from cds_service.feedback.store import CardShown
from cds_service.hooks.schemas import schema_issues
from cds_service.web import feedback as blueprint
from cds_service.web import health
from tests.deploy.deploy_support import deployment_app, small_knowledge


def test_healthz_is_ok_even_when_the_store_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = deployment_app(tmp_path)
    monkeypatch.setattr(blueprint, "readiness", lambda app: (False, "connection refused"))
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"


def test_readyz_ready_with_knowledge_and_a_working_store(tmp_path: Path) -> None:
    app = deployment_app(tmp_path)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"knowledge": "ok", "feedbackStore": "ok"}
    assert body["knowledgeVersion"] == "test-1"


def test_readyz_503_when_the_feedback_store_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = deployment_app(tmp_path)
    monkeypatch.setattr(blueprint, "readiness", lambda app: (False, "connection refused"))
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "not-ready"
    assert body["checks"] == {"knowledge": "ok", "feedbackStore": "connection refused"}
    assert schema_issues("Readiness", body) == []  # the body openapi.yaml documents


def test_readyz_503_when_the_readiness_check_raises_and_hides_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = deployment_app(tmp_path)

    def boom(app: object) -> tuple[bool, str]:
        raise RuntimeError("postgresql://user:secret@db/x unreachable")

    monkeypatch.setattr(blueprint, "readiness", boom)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert "secret" not in resp.get_data(as_text=True)
    assert resp.get_json()["checks"]["feedbackStore"] == "feedback store check failed (RuntimeError)"


def test_readyz_503_with_an_unreachable_real_database(tmp_path: Path) -> None:
    """A real PostgreSQL store whose server refuses connections (nothing listens on loopback port 9)."""
    app = deployment_app(tmp_path, database_url="postgresql+psycopg://cds:s3cr3t-pw@127.0.0.1:9/cds")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert "s3cr3t-pw" not in resp.get_data(as_text=True)
    assert resp.get_json()["checks"]["feedbackStore"] != "ok"


def test_readyz_503_with_a_sqlite_file_that_cannot_be_created(tmp_path: Path) -> None:
    """/proc refuses new files even to root: the read-only-filesystem case, for real."""
    app = deployment_app(tmp_path, database_url="sqlite:////proc/ketamine-cds/feedback.sqlite3")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert "unable to open database file" in resp.get_json()["checks"]["feedbackStore"]


def test_a_database_outage_after_start_leaves_the_pod_ready_and_reports_it(tmp_path: Path, now: datetime) -> None:
    """The database is shared: when it blips, every replica failing readiness at once would leave the
    ingress nothing to route to (502). Each replica stays ready and reports the outage instead."""
    app = deployment_app(tmp_path)
    runtime = blueprint.runtime_of(app)
    assert runtime is not None and runtime.store is not None and runtime.writer is not None

    def down(cards: object) -> None:
        raise ConnectionRefusedError("database down")

    runtime.store.record_cards = down  # type: ignore[method-assign]
    runtime.record([CardShown("c1", "ketamine-order-sign", "order-sign", "hi", "psychosis", "critical", now)])
    assert runtime.writer.flush()
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "ready"
    assert resp.get_json()["checks"]["feedbackStore"] == "degraded: the last card write failed (ConnectionRefusedError)"
    assert schema_issues("Readiness", resp.get_json()) == []


def test_readyz_503_without_feedback_registered(tmp_path: Path) -> None:
    app = deployment_app(tmp_path, with_feedback=False)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["feedbackStore"] == "feedback store not configured"


def test_readyz_503_when_knowledge_missing(tmp_path: Path) -> None:
    app = deployment_app(tmp_path)
    del app.extensions[health.KB_EXTENSION]
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["knowledge"] == "knowledge base not loaded"
    assert "knowledgeVersion" not in resp.get_json()


def test_readyz_503_when_knowledge_incomplete(tmp_path: Path) -> None:
    app = deployment_app(tmp_path, kb=small_knowledge(drop_valueset="pregnancy"))
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["knowledge"] == "value sets missing: pregnancy"


@pytest.mark.parametrize(
    ("kb", "reason"),
    [
        (None, "knowledge base not loaded"),
        ({"version": "x"}, "knowledge base has the wrong type (dict)"),
    ],
)
def test_knowledge_problem_reasons(kb: object, reason: str) -> None:
    assert health.knowledge_problem(kb) == reason


def test_knowledge_problem_none_for_complete_kb() -> None:
    assert health.knowledge_problem(small_knowledge()) is None


def test_bundled_knowledge_base_is_ready(kb: object) -> None:
    """The knowledge base the service ships passes the readiness check."""
    assert health.knowledge_problem(kb) is None
