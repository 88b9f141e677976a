"""The rule documentation page: one anchor per topic, thresholds as configured, sources, escaping."""

from __future__ import annotations

import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from cds_service.knowledge.docs import render_rules_page
from cds_service.knowledge.loader import DATA_DIR, load_knowledge
from cds_service.knowledge.model import Knowledge


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tags: set[str] = set()
        self.external: list[str] = []  # resources the page would load from elsewhere
        self.links: list[str] = []  # outgoing hyperlinks (the bibliography's publisher pages)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if not value or value.startswith("#"):
                continue
            if name == "src" or (name == "href" and tag == "link"):
                self.external.append(value)
            elif name == "href":
                self.links.append(value)


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    return parser


def _data_with_topic(tmp_path: Path, topic_yaml: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    for path in (data / "topics").glob("*.yaml"):
        path.unlink()
    (data / "topics" / "contraindications.yaml").write_text(topic_yaml)
    return data


TOPIC = """
topics:
  hypertension-uncontrolled:
    section: "3. Contraindications and precautions"
    title: "Uncontrolled hypertension"
    references: [ketalar-pi, asra-pain-2018]
    logic: "Latest BP within [[bp.lookback_days]] days at or above [[bp.critical_systolic]]/[[bp.critical_diastolic]]"
    variants:
      default: {indicator: critical, summary: "BP {bp}", rationale: "Ketamine raises BP."}
  psychosis:
    section: "3. Contraindications and precautions"
    title: "Psychosis <b>bold</b> & co"
    references: [focus-2019]
    logic: "<script>alert(1)</script>"
    variants:
      active: {indicator: critical, summary: "s", rationale: "r"}
      history: {indicator: warning, summary: "s", rationale: "r"}
"""


def test_every_topic_has_an_anchor_and_ids_are_unique(kb: Knowledge) -> None:
    parsed = _parse(render_rules_page(kb))
    assert set(kb.topics) <= set(parsed.ids)
    assert len(parsed.ids) == len(set(parsed.ids))
    assert parsed.external == []  # self-contained: no scripts, styles or images from elsewhere
    assert "script" not in parsed.tags
    assert all(link.startswith("https://") for link in parsed.links)


def test_bibliography_lists_every_reference_in_full_with_an_anchor(kb: Knowledge) -> None:
    html = render_rules_page(kb)
    ids = _parse(html).ids
    for ref in kb.references.values():
        assert f"ref-{ref.key}" in ids
        entry = html.split(f'id="ref-{ref.key}"')[1].split("</li>")[0]
        assert escape(ref.citation) in entry
    for topic in kb.topics.values():
        section = html.split(f'id="{topic.code}"')[1].split("</section>")[0]
        assert all(f'href="#ref-{key}"' in section for key in topic.references), topic.code


def test_retired_topics_are_documented_as_retired(kb: Knowledge) -> None:
    html = render_rules_page(kb)
    for topic in kb.topics.values():
        section = html.split(f'id="{topic.code}"')[1].split("</section>")[0]
        assert ("<strong>retired</strong>" in section) == bool(topic.retired), topic.code


def test_page_shows_logic_with_configured_thresholds_sources_and_version(tmp_path: Path) -> None:
    data = _data_with_topic(tmp_path, TOPIC)
    site = tmp_path / "site.yaml"
    site.write_text("version: clinic-a\nthresholds:\n  bp.critical_systolic: 170\n")
    kb = load_knowledge(str(site), data_dir=data)
    html = render_rules_page(kb, data_dir=data)
    assert 'id="hypertension-uncontrolled"' in html
    assert "Latest BP within 30 days at or above 170/100" in html
    assert "2026.11.1+site.clinic-a" in html
    assert "critical" in html and "Ketalar prescribing information; ASRA/AAPM/ASA pain consensus 2018" in html
    section = html.split('id="hypertension-uncontrolled"')[1].split("</section>")[0]
    assert '<a href="#ref-ketalar-pi">' in section and '<a href="#ref-asra-pain-2018">' in section
    assert kb.seeds["000"].title in html and kb.seeds["001"].title in html
    row = html.split('id="threshold-bp.critical_systolic"')[1].split("</tr>")[0]
    assert "170 <span class=site>site</span>" in row and "<td>160</td>" in row
    assert "Benefit outweighs risk after specialist review" in html


def test_knowledge_text_is_escaped(tmp_path: Path) -> None:
    data = _data_with_topic(tmp_path, TOPIC)
    html = render_rules_page(load_knowledge(data_dir=data), data_dir=data)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Psychosis &lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert "critical / warning" in html  # both variants' indicators are shown


def test_valuesets_and_dose_floors_are_listed(kb: Knowledge) -> None:
    html = render_rules_page(kb)
    for key in kb.valuesets:
        assert f'id="valueset-{key}"' in html
    assert "sertraline" in html and "SSRI" in html


def test_the_patient_view_rules_have_their_section_and_the_switch_shows(kb: Knowledge) -> None:
    from cds_service.config import Settings
    from cds_service.knowledge.loader import with_settings

    page = render_rules_page(kb)
    section = page.index("<h2>11. patient-view (no order drafted)</h2>")
    assert section < page.index('id="course-status"') < page.index('id="trd-candidate"')
    assert "remission (PHQ-9 at or below 5, MADRS at or below 10, HAM-D at or below 7)" in page
    assert "no electroconvulsive therapy in the last 365 days" in page
    off = render_rules_page(with_settings(kb, Settings(patient_view_trd_candidate=False)))
    assert "+env.patient-view.trd-candidate-off" in off
