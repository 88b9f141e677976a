"""The knowledge base: the bundled data files (``files``), then a deployment's override (``override``).

``load_knowledge()`` reads ``data/`` and applies the file named by ``KETAMINE_CDS_RULES_CONFIG``, if any; the
version of the result says which (``2026.11.1``, or ``2026.11.1+site.<label>``). A problem in either raises
``KnowledgeError`` naming the file, the key and the problem.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from cds_service.config import Settings
from cds_service.knowledge.files import (
    KnowledgeError,
    ThresholdDef,
    format_value,
    load_assessments,
    load_local_score_codes,
    load_medications,
    load_override_reasons,
    load_references,
    load_routes,
    load_seeds,
    load_threshold_defs,
    load_topics,
    load_valuesets,
)
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.override import (
    ENV_VAR,
    check_consistency,
    extend_local_score_codes,
    extend_routes,
    extend_valuesets,
    override_marker,
    read_override,
    validate_override,
)

__all__ = ["DATA_DIR", "ENV_VAR", "KnowledgeError", "ThresholdDef", "default_knowledge", "format_value",
           "load_knowledge", "threshold_definitions", "with_settings"]

DATA_DIR = Path(__file__).parent / "data"


def load_knowledge(override_file: str | None = None, *, data_dir: Path | None = None) -> Knowledge:
    """Build the knowledge base from ``data_dir`` (default: the bundled data) plus an optional override file."""
    root = data_dir or DATA_DIR
    defs, data_version = load_threshold_defs(root / "thresholds.yaml")
    thresholds: dict[str, float | int | bool] = {name: d.default for name, d in defs.items()}
    valuesets = load_valuesets(root / "valuesets")
    local_codes = load_local_score_codes(root / "local-score-codes.yaml")
    routes = load_routes(root / "routes.yaml")
    version = data_version

    if override_file:
        override = read_override(Path(override_file))
        validate_override(override_file, override, defs, valuesets)
        thresholds.update(override.get("thresholds", {}))
        check_consistency(override_file, thresholds)
        valuesets = extend_valuesets(valuesets, override.get("valuesets", {}))
        routes = extend_routes(routes, override.get("routes", {}))
        local_codes = extend_local_score_codes(local_codes, override.get("local_score_codes", {}))
        version = f"{data_version}+site.{override_marker(Path(override_file), override)}"

    reasons = load_override_reasons(root / "override-reasons.yaml")
    seeds = load_seeds(root / "seeds.yaml")
    assessment_orders, assessment_labels = load_assessments(root / "assessments.yaml")
    references = load_references(root / "references.yaml", seeds)
    return Knowledge(
        version=version,
        valuesets=MappingProxyType(valuesets),
        medications=load_medications(root / "medications.json"),
        thresholds=MappingProxyType(thresholds),
        topics=MappingProxyType(load_topics(root, thresholds, reasons, references)),
        seeds=MappingProxyType(seeds),
        local_score_codes=MappingProxyType(local_codes),
        references=MappingProxyType(references),
        assessment_orders=MappingProxyType(assessment_orders),
        assessment_labels=MappingProxyType(assessment_labels),
        routes=routes,
    )


def with_settings(kb: Knowledge, settings: Settings) -> Knowledge:
    """``kb`` with the flags the service settings set (``Settings.knowledge_switches``: e.g.
    KETAMINE_CDS_PATIENT_VIEW_TRD_CANDIDATE); the version names every flag that differs from ``kb``'s."""
    changed = {name: value for name, value in settings.knowledge_switches().items() if kb.thresholds[name] != value}
    if not changed:
        return kb
    marks = ".".join(f"{name.replace('_', '-')}-{'on' if value else 'off'}" for name, value in sorted(changed.items()))
    return dataclasses.replace(
        kb, version=f"{kb.version}+env.{marks}", thresholds=MappingProxyType({**kb.thresholds, **changed})
    )


def default_knowledge() -> Knowledge:
    """The knowledge base of this process: bundled data plus the file named by KETAMINE_CDS_RULES_CONFIG.

    Cached per override path, so it is read once per process (and again only if the variable changes).
    """
    return _cached_knowledge(os.environ.get(ENV_VAR) or None)


def threshold_definitions(data_dir: Path | None = None) -> Mapping[str, ThresholdDef]:
    """Threshold names with their default, unit and source (for documentation and validation)."""
    defs, _ = load_threshold_defs((data_dir or DATA_DIR) / "thresholds.yaml")
    return MappingProxyType(defs)


@lru_cache(maxsize=4)
def _cached_knowledge(override_file: str | None) -> Knowledge:
    return load_knowledge(override_file)
