"""Completeness of the card texts: every topic code of clinical-rules.md has a topic in ``topics/<domain>.yaml``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service.knowledge.model import Knowledge

RULES_MD = Path("/work/shared/clinical-rules.md")


def _catalogue_codes() -> set[str]:
    """Every topic code of the catalogue, the patient-view ones of §11 included."""
    codes = {"eligibility-summary"}
    for line in RULES_MD.read_text().splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \|", line)
        if m:
            codes.add(m.group(1))
    return codes


@pytest.mark.skipif(not RULES_MD.exists(), reason="shared clinical-rules.md not present")
def test_every_topic_code_has_texts(kb: Knowledge) -> None:
    expected = _catalogue_codes()
    assert len(expected) >= 30 and {"course-status", "trd-candidate"} <= expected
    missing = sorted(expected - set(kb.topics))
    assert not missing, f"topic codes without texts: {missing}"
    for code in expected:
        topic = kb.topics[code]
        assert topic.title and topic.logic and topic.references and topic.source_label, code
        assert topic.variants, code
        assert set(topic.references) <= set(kb.references), code
        for name, variant in topic.variants.items():
            # the summary card's detail is its checklist: its variants need no rationale of their own
            assert variant.summary and (variant.rationale or code == "eligibility-summary"), f"{code}.{name}"
            assert "[[" not in variant.summary + variant.rationale + topic.logic, f"{code}.{name}"
