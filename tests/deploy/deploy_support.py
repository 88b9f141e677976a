"""Helpers for the deployment tests: a small knowledge base and an app with only the deployment parts."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from flask import Flask

from cds_service.config import Settings
from cds_service.knowledge.model import CardText, Ingredient, Knowledge, MedicationCatalog, Topic, ValueSet
from cds_service.observability import metrics
from cds_service.web import health

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def dockerignore_excludes(path: str) -> bool:
    """Evaluate .dockerignore (last matching pattern wins) for a context-relative path."""
    excluded = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        candidates = [pattern, pattern.replace("**/", "")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for c in candidates for p in [*prefixes, parts[-1]]):
            excluded = not negate
    return excluded


def small_knowledge(*, drop_valueset: str | None = None) -> Knowledge:
    """A complete-enough knowledge base for the readiness check (every required key, nothing clinical)."""
    valuesets = {
        key: ValueSet(key=key, url=f"urn:test:{key}", version="1", title=key, source="test", codes=frozenset())
        for key in health.REQUIRED_VALUESETS
        if key != drop_valueset
    }
    ingredients = {
        name: Ingredient(key=name, rxcui=None, name=name, roles=frozenset({role}), drug_class=None,
                         min_daily_dose_mg=None)
        for name, role in (("ketamine", "ketamine"), ("esketamine", "esketamine"), ("sertraline", "antidepressant"))
    }
    summary = Topic(code="eligibility-summary", section="8", title="Summary", logic="",
                    source_label="test", variants={"default": CardText("s", "r", "info")})
    return Knowledge(
        version="test-1",
        valuesets=valuesets,
        medications=MedicationCatalog(ingredients=ingredients, products={}, ingredient_codes={}),
        thresholds={"bp.critical_systolic": 160},
        topics={"eligibility-summary": summary},
        seeds={},
    )


def deployment_app(
    tmp_path: Path, *, kb: object | None = None, with_feedback: bool = True, database_url: str | None = None
) -> Flask:
    """Flask app with metrics, health and the real feedback store (SQLite under ``tmp_path``)."""
    app = Flask("deploy-test")
    url = database_url or f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    settings = Settings(auth_enabled=False, database_url=url)
    metrics.install(app, settings)
    health.register(app, settings)
    if with_feedback:
        from cds_service.web import feedback as blueprint

        blueprint.register(app, settings)
    app.extensions[health.KB_EXTENSION] = small_knowledge() if kb is None else kb
    return app
