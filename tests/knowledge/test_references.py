"""The bibliography (``references.yaml``): every topic cites published sources, resolved by the loader."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cds_service.knowledge.files import LABEL_REFERENCES
from cds_service.knowledge.loader import DATA_DIR, KnowledgeError, load_knowledge
from cds_service.knowledge.model import Knowledge

_SEED = re.compile(r"\bseeds?\b|\b00[0-4]\b", re.IGNORECASE)


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    return data


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_every_topic_names_known_references_and_its_label_is_built_from_them(kb: Knowledge) -> None:
    assert {"vadod-mdd-2022", "focus-2019", "rasmussen-2013", "nikayin-2022", "asra-pain-2018", "spravato-pi",
            "ketalar-pi"} <= set(kb.references)
    for topic in kb.topics.values():
        assert topic.references, topic.code
        shorts = [kb.references[key].short for key in topic.references[:LABEL_REFERENCES]]
        assert topic.source_label == "; ".join(shorts), topic.code


def test_references_are_complete_and_point_at_their_evidence_summaries(kb: Knowledge) -> None:
    for ref in kb.references.values():
        assert ref.short and ref.citation and ref.kind and ref.year >= 2000, ref.key
        assert ref.verified, ref.key  # how the entry was checked is written down
        assert set(ref.cited_in) <= set(kb.seeds), ref.key
        assert ref.url is None or ref.url.startswith("https://"), ref.key
    spravato = kb.references["spravato-pi"]
    assert spravato.year == 2025 and "January 2025" in spravato.citation and "monotherapy" in spravato.citation


def test_no_card_text_names_a_seed_document(kb: Knowledge) -> None:
    for topic in kb.topics.values():
        assert not _SEED.search(topic.source_label), topic.code
        for name, variant in topic.variants.items():
            assert not _SEED.search(variant.summary), f"{topic.code}.{name}"
            assert not _SEED.search(variant.rationale), f"{topic.code}.{name}"


def test_an_unknown_reference_stops_the_load_naming_file_topic_and_key(tmp_path: Path) -> None:
    data = _data(tmp_path)
    _rewrite(data / "topics" / "trd.yaml", "references: [vadod-mdd-2022", "references: [vadod-mdd-2021")
    where = r"trd\.yaml: topics\.trd-criteria-unmet\.references"
    with pytest.raises(KnowledgeError, match=where + r": unknown reference 'vadod-mdd-2021'"):
        load_knowledge(data_dir=data)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("    references: [vadod-mdd-2022, focus-2019, spravato-pi]\n", "", r"references: required"),
        ("    references: [vadod-mdd-2022, focus-2019, spravato-pi]\n",
         '    seeds: ["000"]\n    references: [vadod-mdd-2022]\n', r"\.seeds: no longer written by hand"),
        ("    references: [vadod-mdd-2022, focus-2019, spravato-pi]\n",
         '    source_label: "x"\n    references: [vadod-mdd-2022]\n', r"\.source_label: no longer written by hand"),
        ("    references: [vadod-mdd-2022, focus-2019, spravato-pi]\n",
         "    references: [focus-2019, focus-2019]\n", r"listed twice"),
    ],
)
def test_a_topic_without_proper_references_stops_the_load(tmp_path: Path, old: str, new: str, problem: str) -> None:
    data = _data(tmp_path)
    _rewrite(data / "topics" / "trd.yaml", old, new)
    with pytest.raises(KnowledgeError, match=problem):
        load_knowledge(data_dir=data)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('    kind: guideline\n    year: 2022\n', '    kind: blog\n    year: 2022\n', r"vadod-mdd-2022\.kind: 'blog'"),
        ('cited_in: ["000", "003"]', 'cited_in: ["007"]', r"vadod-mdd-2022\.cited_in: '007'"),
        ('short: "VA/DoD MDD guideline 2022"', 'short: "' + "x" * 46 + '"', r"vadod-mdd-2022\.short: at most 45"),
    ],
)
def test_a_malformed_reference_stops_the_load(tmp_path: Path, old: str, new: str, problem: str) -> None:
    data = _data(tmp_path)
    _rewrite(data / "references.yaml", old, new)
    with pytest.raises(KnowledgeError, match=problem):
        load_knowledge(data_dir=data)
