"""The rule documentation page (``GET /docs/rules``), generated from the knowledge base.

One section per topic code, anchored by the code itself (cards link to ``/docs/rules#<topic>``): the rule in
plain words with thresholds as configured, the card indicator(s), its published sources (linked to the
bibliography), or why it is retired. Then the thresholds (effective value, default, unit, source), the value
sets, the antidepressant dose floors, the bibliography in full (``#references``, ``#ref-<key>``), the evidence
summaries the rules were derived from, and the knowledge version. Self-contained HTML (inline CSS, no scripts,
no external resources; the only outgoing links are the publishers' pages of the references); every piece of
knowledge-base text is HTML-escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import escape
from pathlib import Path

from cds_service.knowledge.loader import ThresholdDef, format_value, threshold_definitions
from cds_service.knowledge.model import ROUTE_GROUPS, Knowledge, Topic

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.5}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2.5rem;border-bottom:1px solid #ccc}h3{font-size:1.1rem}
section.topic{margin:1.5rem 0;padding:0.5rem 1rem;border-left:4px solid #888}
section.topic:target{background:#fff8dc}
.critical{border-left-color:#b00020}.warning{border-left-color:#c77700}.info{border-left-color:#1565c0}
code{background:#f3f3f3;padding:0 0.2rem}
table{border-collapse:collapse;width:100%;font-size:0.9rem}
th,td{border:1px solid #ccc;padding:0.25rem 0.5rem;text-align:left;vertical-align:top}
.rationale{white-space:pre-wrap;background:#fafafa;padding:0.5rem;border:1px solid #eee}
.site{font-weight:bold}
"""


def render_rules_page(kb: Knowledge, *, data_dir: Path | None = None) -> str:
    """The whole page as one HTML string."""
    defs = threshold_definitions(data_dir)
    topics = sorted(kb.topics.values(), key=_section_order)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>ketamine-cds rule documentation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ketamine-cds: rules, thresholds and sources</h1>",
        f"<p>Knowledge base version <code>{escape(kb.version)}</code>. Every card links to its rule below "
        "(<code>#&lt;topic code&gt;</code>). Values marked <span class=site>site</span> were changed by this "
        "deployment's rules configuration.</p>",
        _contents(topics),
    ]
    section = None
    for topic in topics:
        if topic.section != section:
            section = topic.section
            parts.append(f"<h2>{escape(section or 'Other rules')}</h2>")
        parts.append(_topic(topic, kb))
    parts.append(_thresholds(kb, defs))
    parts.append(_valuesets(kb))
    parts.append(_dose_floors(kb))
    parts.append(_routes(kb))
    parts.append(_references(kb))
    parts.append(_seeds(kb))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section_order(topic: Topic) -> tuple[int, str]:
    m = re.match(r"\s*(\d+)", topic.section)
    return (int(m.group(1)) if m else 99, topic.section)


def _contents(topics: list[Topic]) -> str:
    items = "".join(
        f'<li><a href="#{escape(t.code, quote=True)}">{escape(t.title)}</a> <code>{escape(t.code)}</code></li>'
        for t in topics
    )
    return (
        f"<nav><h2>Rules</h2><ul>{items}</ul>"
        '<p><a href="#thresholds">Thresholds</a> · <a href="#valuesets">Value sets</a> · '
        '<a href="#dose-floors">Antidepressant dose floors</a> · <a href="#references">References</a> · '
        '<a href="#seeds">Evidence summaries</a></p></nav>'
    )


def _topic(topic: Topic, kb: Knowledge) -> str:
    indicators = sorted({v.indicator for v in topic.variants.values()}, key=lambda i: -i.urgency)
    strongest = indicators[0] if indicators else "info"
    variants = "".join(
        f"<li><code>{escape(name)}</code>: {escape(v.indicator)}</li>" for name, v in topic.variants.items()
    )
    references = "".join(
        f'<li><a href="#ref-{escape(key, quote=True)}">{escape(kb.references[key].short)}</a> — '
        f"{escape(kb.references[key].citation)}</li>"
        for key in topic.references
        if key in kb.references
    )
    rationale = "".join(
        f'<h4>Why ({escape(name)})</h4><div class="rationale">{escape(v.rationale.strip())}</div>'
        for name, v in topic.variants.items()
        if v.rationale.strip()
    )
    reasons = ", ".join(escape(display) for _code, display in topic.override_reasons)
    return (
        f'<section class="topic {escape(strongest, quote=True)}" id="{escape(topic.code, quote=True)}">'
        f"<h3>{escape(topic.title)}</h3>"
        f"<p>Topic code <code>{escape(topic.code)}</code> · "
        + (
            f"<strong>retired</strong>: never emitted again ({escape(topic.retired)})</p>"
            if topic.retired
            else f"indicator: {escape(' / '.join(indicators) or 'info')}</p>"
        )
        + f"<p>{escape(topic.logic)}</p>"
        + (f"<p>Card variants:</p><ul>{variants}</ul>" if len(topic.variants) > 1 else "")
        + f"<p>Guideline basis: {escape(topic.source_label)}</p>"
        + (f"<p>References:</p><ul>{references}</ul>" if references else "")
        + (f"<p>Override reasons offered: {reasons}</p>" if reasons and strongest != "info" else "")
        + rationale
        + "</section>"
    )


def _thresholds(kb: Knowledge, defs: Mapping[str, ThresholdDef]) -> str:
    rows = []
    for name, value in kb.thresholds.items():
        d = defs.get(name)
        default = d.default if d is not None else value
        changed = default != value
        shown = escape(format_value(value)) + (" <span class=site>site</span>" if changed else "")
        rows.append(
            f'<tr id="threshold-{escape(name, quote=True)}"><td><code>{escape(name)}</code></td><td>{shown}</td>'
            f"<td>{escape(format_value(default))}</td><td>{escape(d.unit if d else '')}</td>"
            f"<td>{escape(d.source if d else '')}</td></tr>"
        )
    return (
        '<h2 id="thresholds">Thresholds and look-back windows</h2>'
        "<table><thead><tr><th>Name</th><th>In use</th><th>Default</th><th>Unit</th><th>Source</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _valuesets(kb: Knowledge) -> str:
    rows = "".join(
        f'<tr id="valueset-{escape(key, quote=True)}"><td><code>{escape(key)}</code></td><td>{escape(vs.title)}</td>'
        f"<td>{len(vs.codes)} codes, {len(vs.prefixes)} ICD-10-CM categories, "
        f"{len(vs.text_patterns)} name patterns</td><td>{escape(vs.source)}</td></tr>"
        for key, vs in sorted(kb.valuesets.items())
    )
    return (
        '<h2 id="valuesets">Value sets</h2><p>ICD-10-CM categories match their descendant codes. Names are '
        "matched only when no code is recognised, and cards say so.</p>"
        "<table><thead><tr><th>Key</th><th>Title</th><th>Content</th><th>Source</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _dose_floors(kb: Knowledge) -> str:
    rows = "".join(
        f"<tr><td>{escape(i.name)}</td><td>{escape(i.drug_class or '')}</td>"
        f"<td>{escape(format_value(i.min_daily_dose_mg)) if i.min_daily_dose_mg is not None else 'none known'}</td>"
        f"<td>{escape(i.source)}</td></tr>"
        for i in sorted(kb.medications.ingredients.values(), key=lambda i: (i.drug_class or "", i.name))
        if "antidepressant" in i.roles
    )
    return (
        '<h2 id="dose-floors">Antidepressant dose floors (adequate trial)</h2>'
        "<table><thead><tr><th>Ingredient</th><th>Class</th><th>Minimum mg/day</th><th>Source</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _routes(kb: Knowledge) -> str:
    """How the route of a draft order is read: codes first, then whole words (``routes.yaml``)."""
    routes = kb.routes
    rows = []
    for group in ROUTE_GROUPS:
        codes = ", ".join(
            f"<code>{escape(code)}</code> {escape(routes.displays.get((system, code), ''))} ({escape(system)})"
            for (system, code), g in sorted(routes.codes.items()) if g == group
        )
        words = ", ".join(f"<code>{escape(word)}</code>" for word, g in sorted(routes.words) if g == group)
        rows.append(f"<tr><td>{escape(group)}</td><td>{codes or 'none'}</td><td>{words or 'none'}</td></tr>")
    return (
        f'<h2 id="routes">Routes of administration</h2><p>Version <code>{escape(routes.version)}</code>; '
        f"source: {escape(routes.source)}. A draft order's route is read from its codes first, then from the "
        "whole words of its text and displays; an order with no route is read as IV ketamine or intranasal "
        "esketamine, and the checklist says so.</p>"
        "<table><thead><tr><th>Route</th><th>Codes</th><th>Words</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _references(kb: Knowledge) -> str:
    """The bibliography in full: what cards name in ``source.label``, most recent first."""
    items = "".join(
        f'<li id="ref-{escape(r.key, quote=True)}"><strong>{escape(r.short)}</strong> ({escape(r.kind)}). '
        f"{escape(r.citation)}"
        + (f' <a href="{escape(r.url, quote=True)}">{escape(r.url)}</a>' if r.url else "")
        + "</li>"
        for r in sorted(kb.references.values(), key=lambda r: (-r.year, r.short))
    )
    return (
        '<h2 id="references">References</h2><p>The published guidelines, articles and product labels the rules '
        "rest on, as cited by the clinical evidence summaries below. Cards name them in their source label.</p>"
        f"<ol>{items}</ol>"
    )


def _seeds(kb: Knowledge) -> str:
    items = "".join(
        f'<li id="seed-{escape(p, quote=True)}">{escape(s.title)}. {escape(s.citation)}. Cites: '
        + (", ".join(escape(r.short) for r in kb.references.values() if p in r.cited_in) or "none listed")
        + "</li>"
        for p, s in sorted(kb.seeds.items())
    )
    return (
        '<h2 id="seeds">Evidence summaries</h2><p>The clinical evidence summaries the rule catalogue was derived '
        f"from, and the published sources each cites.</p><ul>{items}</ul>"
    )
