"""Per-request audit facts shared by the HTTP layer, the request log and the metrics.

Holds no PHI by construction: ids of the hook call and of the cards, topic codes, timings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import g, has_app_context


@dataclass
class RequestAudit:
    service_id: str | None = None
    hook: str | None = None
    hook_instance: str | None = None
    topics: list[str] = field(default_factory=list)
    card_uuids: list[str] = field(default_factory=list)
    indicators: list[str] = field(default_factory=list)
    phases_ms: dict[str, float] = field(default_factory=dict)
    note: str | None = None  # e.g. "no ketamine order", "412: conditions unobtainable"
    client_iss: str | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase: prefetch, fhir_fetch, record, rules, render."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases_ms[name] = round(self.phases_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000, 3)


def current_audit() -> RequestAudit:
    """The audit of the request being served (a throwaway one outside a request)."""
    if not has_app_context():
        return RequestAudit()
    audit = g.get("cds_audit")
    if audit is None:
        audit = RequestAudit()
        g.cds_audit = audit
    return audit
