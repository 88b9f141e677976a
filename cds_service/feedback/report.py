"""The override report: per rule topic, how often cards were shown, accepted and overridden, and why.

Counting rules (stated in every output):
- A card counts once. When a card received several feedback entries, its latest outcome (by
  ``outcomeTimestamp``) is its outcome, so a re-sent report never counts twice.
- With ``since``, the cohort is the cards shown since then, with whatever feedback they received.
- Override rate = overridden / (accepted + overridden). Cards with no feedback are shown separately
  and left out of the rate, because some EHRs send no feedback for cards the clinician ignored.
- Feedback for a card uuid this service has no record of is counted as "unattributed".
"""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from cds_service.feedback.store import FeedbackRow, FeedbackStore

FEW_DECISIONS = 10  # a rate resting on fewer responses is drawn pale and labelled as such
NO_TOPIC = "(no topic)"
NO_REASON = "(no reason given)"
COMMENT_ONLY = "(comment only)"
RATE_DEFINITION = (
    "Override rate = overridden / (accepted + overridden) cards. Each card counts once, with its latest "
    "outcome; cards without feedback are listed but not in the rate."
)


@dataclass(frozen=True)
class ReasonCount:
    code: str
    label: str
    count: int


@dataclass(frozen=True)
class TopicFigures:
    topic: str
    title: str | None
    shown: int
    accepted: int
    overridden: int
    no_feedback: int
    override_rate: float | None
    comments: int
    top_reasons: tuple[ReasonCount, ...] = ()
    shown_by_indicator: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    since: datetime | None
    topics: tuple[TopicFigures, ...]
    totals: TopicFigures
    unattributed_entries: int
    unattributed_cards: int


def build_report(
    store: FeedbackStore,
    *,
    now: datetime,
    since: datetime | None = None,
    titles: Mapping[str, str] | None = None,
    reason_labels: Mapping[str, str] | None = None,
    top_n: int = 3,
) -> Report:
    """Compute the figures from the store. ``titles``/``reason_labels`` map codes to readable names."""
    titles = titles or {}
    reason_labels = reason_labels or {}
    shown: Counter[str] = Counter()
    by_indicator: dict[str, Counter[str]] = defaultdict(Counter)
    for topic, indicator, count in store.shown_counts(since):
        key = topic or NO_TOPIC
        shown[key] += count
        by_indicator[key][indicator] += count

    final: dict[str, FeedbackRow] = {}
    unattributed_entries = 0
    for row in store.feedback_rows(since):  # ordered by card, then outcome time: the last one wins
        if not row.card_known:
            unattributed_entries += 1
        final[row.card_uuid] = row

    accepted: Counter[str] = Counter()
    overridden: Counter[str] = Counter()
    comments: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    labels: dict[str, str] = {}
    unattributed_cards = 0
    for row in final.values():
        if not row.card_known:
            unattributed_cards += 1
            continue
        key = row.topic or NO_TOPIC
        comments[key] += row.has_comment
        if row.outcome == "accepted":
            accepted[key] += 1
            continue
        overridden[key] += 1
        code = row.reason_code or (COMMENT_ONLY if row.has_comment else NO_REASON)
        reasons[key][code] += 1
        labels.setdefault(code, row.reason_display or reason_labels.get(code) or code)

    def figures(topic: str) -> TopicFigures:
        top = sorted(reasons[topic].items(), key=lambda kv: (-kv[1], labels[kv[0]]))[:top_n]
        return _figures(
            topic,
            titles.get(topic),
            shown[topic],
            accepted[topic],
            overridden[topic],
            comments[topic],
            tuple(ReasonCount(code, labels[code], n) for code, n in top),
            dict(sorted(by_indicator[topic].items())),
        )

    rows = [figures(t) for t in set(shown) | set(accepted) | set(overridden)]
    rows.sort(key=lambda f: (f.override_rate is None, -(f.override_rate or 0.0), -f.shown, f.topic))
    totals = _figures(
        "all rules",
        None,
        sum(shown.values()),
        sum(accepted.values()),
        sum(overridden.values()),
        sum(comments.values()),
        (),
        {},
    )
    return Report(now, since, tuple(rows), totals, unattributed_entries, unattributed_cards)


def _figures(
    topic: str,
    title: str | None,
    shown: int,
    accepted: int,
    overridden: int,
    comments: int,
    top: tuple[ReasonCount, ...],
    by_indicator: Mapping[str, int],
) -> TopicFigures:
    decided = accepted + overridden
    return TopicFigures(
        topic=topic,
        title=title,
        shown=shown,
        accepted=accepted,
        overridden=overridden,
        no_feedback=max(shown - decided, 0),
        override_rate=(overridden / decided) if decided else None,
        comments=comments,
        top_reasons=top,
        shown_by_indicator=by_indicator,
    )


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.0f}%"


def _period(report: Report) -> str:
    if report.since is None:
        return "all recorded cards"
    return f"cards shown since {report.since.strftime('%Y-%m-%d %H:%M UTC')}"


# text ---------------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    head = ("Rule (topic code)", "Shown", "Accepted", "Overridden", "No feedback", "Override rate", "Comments")
    body = [
        (f.topic, str(f.shown), str(f.accepted), str(f.overridden), str(f.no_feedback), _pct(f.override_rate),
         str(f.comments))
        for f in (*report.topics, report.totals)
    ]
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]).rstrip()

    out = [
        "ketamine-cds card feedback report",
        f"Period: {_period(report)}; generated {report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}",
        RATE_DEFINITION,
        "",
        line(head),
        line(tuple("-" * w for w in widths)),
    ]
    for f, cells in zip(report.topics, body, strict=False):
        out.append(line(cells))
        for r in f.top_reasons:
            out.append(f"    override reason: {r.label} ({r.count})")
    out.append(line(tuple("-" * w for w in widths)))
    out.append(line(body[-1]))
    out.append("")
    out.append(
        f"Unattributed feedback (card uuid not recorded by this service): {report.unattributed_entries} "
        f"entries for {report.unattributed_cards} card(s)"
    )
    return "\n".join(out) + "\n"


# json ---------------------------------------------------------------------------------------------


def report_dict(report: Report) -> dict[str, object]:
    def topic(f: TopicFigures) -> dict[str, object]:
        data = asdict(f)
        data["top_reasons"] = [asdict(r) for r in f.top_reasons]
        data["shown_by_indicator"] = dict(f.shown_by_indicator)
        return data

    totals = topic(report.totals)
    for key in ("title", "top_reasons", "shown_by_indicator", "topic"):
        totals.pop(key)
    return {
        "generated_at": report.generated_at.isoformat(),
        "since": report.since.isoformat() if report.since else None,
        "override_rate_definition": RATE_DEFINITION,
        "topics": [topic(f) for f in report.topics],
        "totals": totals,
        "unattributed": {"feedback_entries": report.unattributed_entries, "cards": report.unattributed_cards},
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


# html ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d2731;margin:2rem auto;
max-width:64rem;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#4a5763}.note{background:#f3f6f9;border-left:4px solid #5b7186;padding:.6rem .9rem}
table{border-collapse:collapse;width:100%;font-size:.95rem}th,td{padding:.4rem .5rem;border-bottom:1px solid #d5dde4;
text-align:right;vertical-align:top}th:first-child,td:first-child,td.reasons,th.reasons{text-align:left}
thead th{background:#e9eef2}tfoot td{font-weight:600}.code{color:#4a5763;font-size:.85em}
svg text{font-family:inherit}@media print{body{margin:0}}
"""


def _label(f: TopicFigures) -> str:
    return f.title or f.topic


def _chart(report: Report) -> str:
    rows = report.topics
    if not rows:
        return "<p>No cards recorded in this period.</p>"
    label_w, bar_w, value_w, row_h, top = 300, 440, 250, 28, 24
    height = top + row_h * len(rows) + 8
    parts = [
        f'<svg role="img" aria-labelledby="chart-title" width="100%" viewBox="0 0 {label_w + bar_w + value_w} '
        f'{height}" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Override rate per rule</title>',
    ]
    for pct in (0, 25, 50, 75, 100):
        x = label_w + bar_w * pct / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 6}" stroke="#d5dde4"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 10}" font-size="11" text-anchor="middle" fill="#4a5763">'
                     f"{pct}%</text>")
    for i, f in enumerate(rows):
        y = top + i * row_h
        label = _label(f)
        label = label if len(label) <= 42 else label[:41] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 17}" font-size="13" text-anchor="end">'
                     f"{html.escape(label)}</text>")
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="{row_h - 10}" fill="#eef2f5"/>')
        if f.override_rate is None:
            value = "no feedback yet"
        else:
            width = bar_w * f.override_rate
            color = "#b3261e" if f.override_rate >= 0.75 else "#c77700" if f.override_rate >= 0.5 else "#2f6f9f"
            decided = f.accepted + f.overridden
            few = decided < FEW_DECISIONS
            opacity = ' fill-opacity="0.4"' if few else ""
            parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row_h - 10}" '
                         f'fill="{color}"{opacity}>'
                         f"<title>{html.escape(f.topic)}: {_pct(f.override_rate)}</title></rect>")
            caveat = ", few responses" if few else ""
            value = f"{_pct(f.override_rate)} ({f.overridden} of {decided}{caveat})"
        parts.append(f'<text x="{label_w + bar_w + 8}" y="{y + 17}" font-size="12" fill="#1d2731">'
                     f"{html.escape(value)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _table(report: Report) -> str:
    head = ("Rule", "Shown", "Accepted", "Overridden", "No feedback", "Override rate", "Comments",
            "Top override reasons")
    cols = "".join(f'<th scope="col">{h}</th>' for h in head[:-1])
    cols += f'<th scope="col" class="reasons">{head[-1]}</th>'
    out = ["<table>", f"<thead><tr>{cols}</tr></thead>", "<tbody>"]
    for f in report.topics:
        reasons = "<br>".join(f"{html.escape(r.label)} ({r.count})" for r in f.top_reasons) or "&mdash;"
        title = html.escape(_label(f))
        code = f'<br><span class="code">{html.escape(f.topic)}</span>' if f.title else ""
        out.append(
            f'<tr><th scope="row">{title}{code}</th><td>{f.shown}</td><td>{f.accepted}</td>'
            f"<td>{f.overridden}</td><td>{f.no_feedback}</td><td>{_pct(f.override_rate)}</td>"
            f'<td>{f.comments}</td><td class="reasons">{reasons}</td></tr>'
        )
    t = report.totals
    out += [
        "</tbody>",
        f"<tfoot><tr><td>All rules</td><td>{t.shown}</td><td>{t.accepted}</td><td>{t.overridden}</td>"
        f"<td>{t.no_feedback}</td><td>{_pct(t.override_rate)}</td><td>{t.comments}</td><td></td></tr></tfoot>",
        "</table>",
    ]
    return "\n".join(out)


def render_html(report: Report) -> str:
    """A single self-contained page (inline CSS and SVG, no scripts, no external resources)."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>Ketamine CDS: card feedback report</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>Ketamine CDS: how clinicians respond to each rule</h1>",
            f'<p class="meta">Period: {html.escape(_period(report))}. Generated '
            f"{html.escape(report.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}.</p>",
            f'<p class="note">{html.escape(RATE_DEFINITION)} A rule that is overridden most of the time is a '
            "candidate for review: its threshold, its wording, or whether it should be shown at all.</p>",
            "<h2>Override rate per rule</h2>",
            _chart(report),
            f'<p class="meta">Bar colour: red 75% or more, amber 50 to 74%, blue under 50%. Pale bars rest on '
            f"fewer than {FEW_DECISIONS} responses: read them with caution.</p>",
            "<h2>Figures</h2>",
            _table(report),
            "<h2>Unattributed feedback</h2>",
            f"<p>{report.unattributed_entries} feedback entries for {report.unattributed_cards} card(s) that this "
            "service has no record of (for example cards older than the retention period, or sent by another "
            "service). They are stored but not counted above.</p>",
            "</body></html>",
        ]
    ) + "\n"


def render(report: Report, fmt: str) -> str:
    renderers = {"text": render_text, "json": render_json, "html": render_html}
    return renderers[fmt](report)
