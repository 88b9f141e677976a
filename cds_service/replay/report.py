"""The replay report rendered from its document (``document.build_document``): text, JSON, CSV or HTML.

No output holds a patient identifier: the document has none (counts, topic codes, checklist criteria and
places in the export files only). ``ids.py`` writes the separate list for chart review, and only on request.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from cds_service.replay.source import PROBLEM_KINDS
from cds_service.replay.tally import NO_CARDS, URGENCY, describe_place

FORMATS: Final = ("text", "json", "csv", "html")

LEFT_OUT_MEANINGS: Final[Mapping[str, str]] = {
    "no-patient-resource": "resources refer to the patient, but the Patient resource is not in the export",
    "not-in-cohort": "not in the cohort (no active depressive disorder on record)",
    "deceased": "recorded as deceased by the date of the order",
    "no-ketamine-order": "no ketamine or esketamine order in the export",
    "no-dated-ketamine-order": "ketamine or esketamine orders, none with a usable authoredOn",
}
NOTE_MEANINGS: Final[Mapping[str, str]] = {
    "dose-per-kg-no-weight": "orders written in mg/kg: the template sizes the dose by weight and the patient "
    "had no weight on record (no weight is invented)",
}
COUNTING_RULES: Final = (
    "An order is one hook call with one draft order. Cards per order counts every card the service returns "
    "for it, the eligibility summary included. An order the service would have refused (an HTTP error instead "
    "of cards) is counted under 'refused' and in no card figure. A patient counts once per topic, however "
    "many of their orders showed it."
)
_COLOURS: Final = {"critical": "#b3261e", "warning": "#c77700", "info": "#2f6f9f", NO_CARDS: "#9aa5ae"}


def render(doc: Mapping[str, Any], fmt: str, titles: Mapping[str, str] | None = None) -> str:
    """``doc`` as ``fmt`` (one of FORMATS). ``titles``: topic code -> rule title, for text and HTML."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return render_csv(doc)
    if fmt == "html":
        return render_html(doc, titles or {})
    if fmt == "text":
        return render_text(doc, titles or {})
    raise ValueError(f"unknown format {fmt!r}")


# ---------------------------------------------------------------------------------------------- words


def describe_run(doc: Mapping[str, Any]) -> str:
    p = doc["parameters"]
    if p["mode"] == "actual-orders":
        what = "every ketamine or esketamine order in the export, replayed as of its authoredOn"
    else:
        cohort = "patients with an active depressive disorder" if p["cohort"] == "depression" else "every patient"
        what = f"a hypothetical {p['order_template']} order on {p['now']} for {cohort}"
    shard = f"; shard {p['shard']} of the patients" if p.get("shard") else ""
    return f"{what} (hook {p['hook']}{shard})"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _n(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _answered(doc: Mapping[str, Any]) -> int:
    return sum(doc["cards_per_order"]["distribution"].values())


def _problems(doc: Mapping[str, Any]) -> list[tuple[str, int, list[str]]]:
    """(kind, count, examples) of the input's and the patients' problems together."""
    merged: dict[str, tuple[int, list[str]]] = {}
    for section in (doc["input"]["problems"], doc["problems"]):
        for kind, entry in section.items():
            count, examples = merged.get(kind, (0, []))
            shown = [describe_place(_place(e)) for e in entry["examples"]]
            merged[kind] = (count + int(entry["count"]), examples + shown)
    return [(kind, count, examples[:5]) for kind, (count, examples) in sorted(merged.items())]


def _place(entry: Mapping[str, Any]) -> tuple[str, str, int]:
    unit = "entry" if "entry" in entry else "line"
    return str(entry["file"]), unit, int(entry.get(unit, 0))


def _label(code: str, titles: Mapping[str, str]) -> str:
    title = titles.get(code)
    return f"{title} ({code})" if title else code


# ---------------------------------------------------------------------------------------------- text


def render_text(doc: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    out: list[str] = []
    add = out.append
    orders, answered = doc["orders"], _answered(doc)
    add("ketamine-cds replay: what the rules would have said")
    add(f"Replayed: {describe_run(doc)}")
    add(f"Knowledge base {doc['knowledge_base_version']}; service {doc['service_version']}")
    add("")
    inp = doc["input"]
    read = ", ".join(f"{t} {n:,}" for t, n in inp["resources"].items()) or "none"
    add(f"Export: {inp['files']:,} file(s); resources read: {read}")
    if inp["ignored_types"]:
        add("  not read (types the service does not use): "
            + ", ".join(f"{t} {n:,}" for t, n in inp["ignored_types"].items()))
    add(f"Patients: {doc['patients_in_export']:,} in the export; {doc['patients']:,} evaluated")
    for reason, n in doc["patients_left_out"].items():
        add(f"  left out: {n:,} {LEFT_OUT_MEANINGS.get(reason, reason)}")
    refused = ", ".join(f"HTTP {status}: {n:,}" for status, n in doc["orders_refused"].items())
    add(f"Orders: {orders:,} replayed" + (f"; refused by the service: {refused}" if refused else ""))
    cpo = doc["cards_per_order"]
    add(f"Cards: {doc['cards']:,}; per order: mean {cpo['mean'] if cpo['mean'] is not None else 'n/a'}, "
        f"median {_n(cpo['median'])}, 90th percentile {_n(cpo['p90'])}, most {_n(cpo['max'])}")
    if cpo["distribution"]:
        add("  orders by number of cards: "
            + ", ".join(f"{k} card(s): {v:,}" for k, v in cpo["distribution"].items()))
    for indicator in (*URGENCY, NO_CARDS):
        n = doc["orders_by_most_urgent_card"].get(indicator, 0)
        if n:
            what = "no card" if indicator == NO_CARDS else f"{_article(indicator)} {indicator} card as the most urgent"
            add(f"  orders with {what}: {n:,} ({_pct(n, answered)})")
    add("")
    add(COUNTING_RULES)
    add("")
    add(_topic_table_text(doc, titles, answered))
    gaps = doc["data_gaps"]
    for key, heading in (
        ("not_documented", "Not documented (checklist criteria; orders)"),
        ("not_obtained", "Data the service could not obtain (orders)"),
        ("skipped_as_invalid", "Resources set aside as invalid (orders with at least one, by type)"),
    ):
        if gaps[key]:
            add("")
            add(heading)
            for name, n in gaps[key].items():
                add(f"  {name}: {n:,} ({_pct(n, answered)})")
    as_of = doc["as_of"]
    if as_of["orders_with_data_left_out"]:
        add("")
        add(f"As of the order: {as_of['orders_with_data_left_out']:,} order(s) had "
            f"{as_of['resources_left_out']:,} resource(s) dated after them left out")
    if doc["notes"]:
        add("")
        add("Notes")
        for note, n in doc["notes"].items():
            add(f"  {n:,} {NOTE_MEANINGS.get(note, note)}")
    problems = _problems(doc)
    add("")
    add("Problems in the input (counted, never fatal)" if problems else "Problems in the input: none")
    for kind, count, examples in problems:
        add(f"  {kind}: {count:,}: {PROBLEM_KINDS.get(kind, kind)}")
        if examples:
            add(f"    e.g. {'; '.join(examples)}")
    if doc["service_log"]:
        add("")
        add("Service log messages (warnings and errors, by logger)")
        for name, n in doc["service_log"].items():
            add(f"  {name}: {n:,}")
    return "\n".join(out) + "\n"


def _topic_table_text(doc: Mapping[str, Any], titles: Mapping[str, str], answered: int) -> str:
    head = ("Card topic", "Cards", "critical", "warning", "info", "Orders", "% orders", "Patients")
    rows = [
        (
            _label(topic, titles),
            f"{sum(by.values()):,}",
            *(f"{by.get(i, 0):,}" for i in URGENCY),
            f"{doc['orders_with_topic'].get(topic, 0):,}",
            _pct(doc["orders_with_topic"].get(topic, 0), answered),
            f"{doc['patients_with_topic'].get(topic, 0):,}",
        )
        for topic, by in _topics_by_frequency(doc)
    ]
    if not rows:
        return "No cards."
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join([cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)])


def _topics_by_frequency(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, int]]]:
    orders = doc["orders_with_topic"]
    return sorted(doc["topics"].items(), key=lambda kv: (-orders.get(kv[0], 0), kv[0]))


# ---------------------------------------------------------------------------------------------- csv


def render_csv(doc: Mapping[str, Any]) -> str:
    """Every figure as one row ``section,key,indicator,value`` (a long table: pivot it as needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "key", "indicator", "value"))
    writer.writerows(_csv_rows(doc))
    return buffer.getvalue()


def _csv_rows(doc: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    for key, value in doc["parameters"].items():
        yield "parameter", key, "", json.dumps(value) if isinstance(value, list | dict) else value
    yield "version", "knowledge_base", "", doc["knowledge_base_version"]
    yield "version", "service", "", doc["service_version"]
    yield "input", "files", "", doc["input"]["files"]
    for section, key in (("input_resources", "resources"), ("input_not_read", "ignored_types")):
        for name, n in doc["input"][key].items():
            yield section, name, "", n
    for key in ("patients_in_export", "patients", "orders", "cards"):
        yield "total", key, "", doc[key]
    for section in ("patients_left_out", "orders_refused", "orders_with_indicator", "orders_by_most_urgent_card",
                    "orders_with_topic", "patients_with_topic", "notes", "service_log"):  # fmt: skip
        for name, n in doc[section].items():
            yield section, name, "", n
    cpo = doc["cards_per_order"]
    for key in ("mean", "median", "p90", "max"):
        yield "cards_per_order", key, "", "" if cpo[key] is None else cpo[key]
    for n_cards, n in cpo["distribution"].items():
        yield "cards_per_order_distribution", n_cards, "", n
    share = doc["share_of_orders_with_critical"]
    yield "share_of_orders_with_critical", "", "", "" if share is None else share
    for topic, by in doc["topics"].items():
        for indicator, n in by.items():
            yield "topic_cards", topic, indicator, n
    for section, counts in doc["data_gaps"].items():
        for name, n in counts.items():
            yield section, name, "", n
    for key, n in doc["as_of"].items():
        yield "as_of", key, "", n
    for kind, count, _examples in _problems(doc):
        yield "problem", kind, "", count


# ---------------------------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d2731;margin:2rem auto;
max-width:64rem;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#4a5763}.note{background:#f3f6f9;border-left:4px solid #5b7186;padding:.6rem .9rem}
.figures{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}.figure{background:#f3f6f9;padding:.6rem 1rem;
min-width:10rem}.figure b{display:block;font-size:1.5rem}
table{border-collapse:collapse;width:100%;font-size:.95rem}th,td{padding:.4rem .5rem;border-bottom:1px solid #d5dde4;
text-align:right;vertical-align:top}th:first-child,td:first-child,td.text{text-align:left}
thead th{background:#e9eef2}.code{color:#4a5763;font-size:.85em}.key{display:inline-block;width:.8em;
height:.8em;margin:0 .3em 0 .8em}svg text{font-family:inherit}@media print{body{margin:0}}
"""


def render_html(doc: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """One self-contained page (inline CSS and SVG charts; no script, nothing fetched)."""
    answered = _answered(doc)
    critical = doc["orders_by_most_urgent_card"].get("critical", 0)
    mean = doc["cards_per_order"]["mean"]
    figures = (
        (f"{doc['patients']:,}", f"patients evaluated, of {doc['patients_in_export']:,} in the export"),
        (f"{doc['orders']:,}", "orders replayed"),
        ("n/a" if mean is None else f"{mean:g}", "cards per order (mean)"),
        (_pct(critical, answered), "of orders with a critical card"),
    )
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Ketamine CDS: replay before go-live</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Ketamine CDS: what the rules would have said</h1>",
        f'<p class="meta">Replayed: {esc(describe_run(doc))}. Knowledge base '
        f"{esc(str(doc['knowledge_base_version']))}, service {esc(str(doc['service_version']))}.</p>",
        '<div class="figures">'
        + "".join(f'<div class="figure"><b>{esc(v)}</b>{esc(t)}</div>' for v, t in figures)
        + "</div>",
        f'<p class="note">{esc(COUNTING_RULES)}</p>',
        "<h2>Orders by their most urgent card</h2>",
        _urgency_chart(doc, answered),
        "<h2>Cards per order</h2>",
        _histogram(doc),
        "<h2>How often each card would be shown</h2>",
        _topic_chart(doc, titles, answered),
        _topic_table_html(doc, titles, answered),
        "<h2>Missing data</h2>",
        _gaps_html(doc, answered),
        "<h2>Patients and input</h2>",
        _input_html(doc),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _urgency_chart(doc: Mapping[str, Any], answered: int) -> str:
    if not answered:
        return "<p>No order was answered with cards.</p>"
    width, height = 960, 46
    x = 0.0
    segments: list[str] = []
    legend: list[str] = []
    for indicator in (*URGENCY, NO_CARDS):
        n = doc["orders_by_most_urgent_card"].get(indicator, 0)
        if not n:
            continue
        w = width * n / answered
        label = "no card" if indicator == NO_CARDS else indicator
        title = f"{label}: {n:,} orders ({_pct(n, answered)})"
        colour = _COLOURS.get(indicator, "#5b7186")
        segments.append(f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="30" fill="{colour}">'
                        f"<title>{html.escape(title)}</title></rect>")
        if w >= 70:  # room for the share inside the bar
            segments.append(f'<text x="{x + 6:.1f}" y="24" font-size="13" fill="#ffffff">'
                            f"{_pct(n, answered)}</text>")
        x += w
        legend.append(f'<span class="key" style="background:{colour}"></span>{html.escape(title)}')
    return (
        f'<svg role="img" aria-label="Share of orders by their most urgent card" width="100%" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(segments)}</svg>'
        f'<p class="meta">{"".join(legend)}</p>'
    )


def _histogram(doc: Mapping[str, Any]) -> str:
    distribution = {int(k): int(v) for k, v in doc["cards_per_order"]["distribution"].items()}
    if not distribution:
        return "<p>No order was answered with cards.</p>"
    values = range(min(distribution), max(distribution) + 1)
    peak = max(distribution.values())
    bar, gap, chart_h, top, bottom = 44, 12, 180, 20, 40
    width = len(values) * (bar + gap) + gap
    parts = [
        f'<svg role="img" aria-label="Number of orders by number of cards" width="100%" '
        f'viewBox="0 0 {max(width, 300)} {top + chart_h + bottom}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, value in enumerate(values):
        n = distribution.get(value, 0)
        h = chart_h * n / peak
        x = gap + i * (bar + gap)
        y = top + chart_h - h
        parts.append(f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="#2f6f9f">'
                     f"<title>{value} card(s): {n:,} orders</title></rect>")
        parts.append(f'<text x="{x + bar / 2}" y="{y - 4:.1f}" font-size="11" text-anchor="middle">{n:,}</text>')
        parts.append(f'<text x="{x + bar / 2}" y="{top + chart_h + 16}" font-size="12" text-anchor="middle">'
                     f"{value}</text>")
    parts.append(f'<text x="{gap}" y="{top + chart_h + 34}" font-size="12" fill="#4a5763">cards per order</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _topic_chart(doc: Mapping[str, Any], titles: Mapping[str, str], answered: int) -> str:
    topics = _topics_by_frequency(doc)
    if not topics or not answered:
        return "<p>No cards.</p>"
    label_w, bar_w, value_w, row_h, top = 320, 420, 220, 26, 22
    height = top + row_h * len(topics) + 8
    esc = html.escape
    parts = [
        f'<svg role="img" aria-label="Share of orders showing each card" width="100%" '
        f'viewBox="0 0 {label_w + bar_w + value_w} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for pct in (0, 25, 50, 75, 100):
        x = label_w + bar_w * pct / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 6}" stroke="#d5dde4"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 10}" font-size="11" text-anchor="middle" fill="#4a5763">'
                     f"{pct}%</text>")
    for row, (topic, by) in enumerate(topics):
        y = top + row * row_h
        label = titles.get(topic) or topic
        label = label if len(label) <= 44 else label[:43] + "…"
        orders = doc["orders_with_topic"].get(topic, 0)
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" font-size="13" text-anchor="end">{esc(label)}</text>')
        total = sum(by.values()) or 1
        x = float(label_w)
        for indicator in (*URGENCY, *sorted(set(by) - set(URGENCY))):
            n = by.get(indicator, 0)
            if not n:
                continue
            w = bar_w * (orders / answered) * (n / total)
            parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" '
                         f'fill="{_COLOURS.get(indicator, "#5b7186")}"><title>{esc(topic)}: {n:,} {esc(indicator)} '
                         f"card(s)</title></rect>")
            x += w
        parts.append(f'<text x="{label_w + bar_w + 8}" y="{y + 16}" font-size="12">'
                     f"{_pct(orders, answered)} ({orders:,} orders)</text>")
    parts.append("</svg>")
    legend = "".join(f'<span class="key" style="background:{_COLOURS[i]}"></span>{i}' for i in URGENCY)
    return "\n".join(parts) + f'<p class="meta">Share of orders showing the card; colour: {legend}.</p>'


def _topic_table_html(doc: Mapping[str, Any], titles: Mapping[str, str], answered: int) -> str:
    esc = html.escape
    head = "".join(f'<th scope="col">{h}</th>' for h in
                   ("Card", "Cards", "critical", "warning", "info", "Orders", "% of orders", "Patients"))
    rows = []
    for topic, by in _topics_by_frequency(doc):
        title = titles.get(topic)
        name = f'{esc(title)}<br><span class="code">{esc(topic)}</span>' if title else esc(topic)
        orders = doc["orders_with_topic"].get(topic, 0)
        cells = "".join(f"<td>{by.get(i, 0):,}</td>" for i in URGENCY)
        rows.append(f'<tr><th scope="row">{name}</th><td>{sum(by.values()):,}</td>{cells}<td>{orders:,}</td>'
                    f"<td>{_pct(orders, answered)}</td><td>{doc['patients_with_topic'].get(topic, 0):,}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _count_table(heading: str, counts: Mapping[str, int], whole: int, explain: Mapping[str, str] | None = None) -> str:
    esc = html.escape
    rows = "".join(
        f'<tr><td class="text">{esc((explain or {}).get(name, name))}</td><td>{n:,}</td><td>{_pct(n, whole)}</td></tr>'
        for name, n in counts.items()
    )
    return (f'<table><thead><tr><th scope="col">{esc(heading)}</th><th scope="col">Orders</th>'
            f'<th scope="col">% of orders</th></tr></thead><tbody>{rows}</tbody></table>')


def _gaps_html(doc: Mapping[str, Any], answered: int) -> str:
    gaps = doc["data_gaps"]
    parts = []
    for key, heading in (
        ("not_documented", "Checklist criterion not documented"),
        ("not_obtained", "Data the service could not obtain"),
        ("skipped_as_invalid", "Resource type set aside as invalid"),
    ):
        if gaps[key]:
            parts.append(_count_table(heading, gaps[key], answered))
    if doc["notes"]:
        parts.append(_count_table("Note", doc["notes"], doc["orders"], NOTE_MEANINGS))
    as_of = doc["as_of"]
    if as_of["orders_with_data_left_out"]:
        parts.append(f"<p>As of the order: {as_of['orders_with_data_left_out']:,} order(s) had "
                     f"{as_of['resources_left_out']:,} resource(s) dated after them left out of their record.</p>")
    return "\n".join(parts) or "<p>Nothing was missing.</p>"


def _input_html(doc: Mapping[str, Any]) -> str:
    esc = html.escape
    inp = doc["input"]
    read = ", ".join(f"{esc(t)} {n:,}" for t, n in inp["resources"].items()) or "none"
    parts = [f"<p>{inp['files']:,} file(s) read; resources: {read}.</p>"]
    if inp["ignored_types"]:
        ignored = ", ".join(f"{esc(t)} {n:,}" for t, n in inp["ignored_types"].items())
        parts.append(f"<p>Not read (types the service does not use): {ignored}.</p>")
    left = doc["patients_left_out"]
    if left:
        items = "".join(f"<li>{n:,}: {esc(LEFT_OUT_MEANINGS.get(r, r))}</li>" for r, n in left.items())
        parts.append(f"<p>Patients left out:</p><ul>{items}</ul>")
    refused = doc["orders_refused"]
    if refused:
        items = "".join(f"<li>HTTP {esc(s)}: {n:,}</li>" for s, n in refused.items())
        parts.append(f"<p>Orders the service would have refused:</p><ul>{items}</ul>")
    problems = _problems(doc)
    if problems:
        rows = "".join(
            f'<tr><td class="text">{esc(kind)}<br><span class="code">{esc(PROBLEM_KINDS.get(kind, ""))}</span></td>'
            f'<td>{count:,}</td><td class="text">{esc("; ".join(examples))}</td></tr>'
            for kind, count, examples in problems
        )
        parts.append('<table><thead><tr><th scope="col">Problem in the input</th><th scope="col">Count</th>'
                     f'<th scope="col">First places</th></tr></thead><tbody>{rows}</tbody></table>')
    else:
        parts.append("<p>No problem in the input.</p>")
    if doc["service_log"]:
        items = "".join(f"<li>{esc(name)}: {n:,}</li>" for name, n in doc["service_log"].items())
        parts.append(f"<p>Service log messages (warnings and errors):</p><ul>{items}</ul>")
    return "\n".join(parts)
