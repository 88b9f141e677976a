"""Card texts live beside the rules that emit them: ``knowledge/data/topics/<domain>.yaml`` for
``rules/<domain>.py``."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2] / "cds_service"
TOPICS = ROOT / "knowledge" / "data" / "topics"
RULES = ROOT / "rules"


def test_every_topics_file_is_named_after_a_rules_module() -> None:
    modules = {path.stem for path in RULES.glob("*.py")}
    assert {path.stem for path in TOPICS.glob("*.yaml")} <= modules


def test_every_topic_a_rule_emits_is_in_the_file_of_its_module() -> None:
    misplaced = []
    for path in sorted(TOPICS.glob("*.yaml")):
        module = (RULES / f"{path.stem}.py").read_text(encoding="utf-8")
        for code, topic in yaml.safe_load(path.read_text(encoding="utf-8"))["topics"].items():
            if topic.get("retired"):
                continue  # documented only: no rule emits it
            if not re.search(rf"[\"']{re.escape(code)}[\"']", module):
                misplaced.append(f"{path.name}: {code}")
    assert misplaced == []
