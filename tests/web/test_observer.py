"""The web app's observer: each card it returns is in the request's audit, the card metric and the feedback store,
the last with the version of the knowledge base that made it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cds_service.config import Settings
from cds_service.feedback.schema import cards_shown
from cds_service.web.app import create_app
from cds_service.web.feedback import runtime_of
from tests.builders.requests import blood_pressure, bundle, full_prefetch, hook_request
from tests.clock import NOW


def test_every_card_served_is_recorded_with_the_knowledge_base_version(kb: Any, tmp_path: Path) -> None:
    app = create_app(Settings(auth_enabled=False, database_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}"), kb=kb)
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle(blood_pressure("bp-1", NOW - timedelta(days=1), 172, 104))
    response = app.test_client().post("/cds-services/ketamine-order-sign", json=hook_request(prefetch=prefetch))
    assert response.status_code == 200
    served = {card["uuid"] for card in response.get_json()["cards"]}
    runtime = runtime_of(app)
    assert runtime is not None and runtime.writer is not None and runtime.store is not None
    runtime.writer.flush(10)
    with runtime.store.engine.connect() as conn:
        recorded = dict(conn.execute(select(cards_shown.c.card_uuid, cards_shown.c.kb_version)).all())
    runtime.close()
    assert len(served) >= 2 and recorded == {uuid: kb.version for uuid in served}
