"""Report figures on a known data set (text, json, html) and the report/purge commands."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from cds_service.feedback import cli as feedback_cli
from cds_service.feedback.report import Report, build_report, render_html, render_json, render_text
from cds_service.feedback.store import CardShown, FeedbackEntry, FeedbackStore

HYPER = "hypertension-uncontrolled"
DOSE = "dose-above-standard"
SUMMARY = "eligibility-summary"
BENEFIT, ELSEWHERE, RESOLVED = "benefit-outweighs-risk", "documented-elsewhere", "resolved-or-outdated"
SYSTEM = "urn:ketamine-cds:override-reason"
TITLES = {HYPER: "Uncontrolled <hypertension>", DOSE: "Dose above the standard 0.5 mg/kg"}
REASON_LABELS = {ELSEWHERE: "Criteria documented outside this record"}


def main(argv: Sequence[str]) -> int:
    """``ketamine-cds`` with only this feature's subcommands (the others are not under test here)."""
    parser = argparse.ArgumentParser(prog="ketamine-cds")
    feedback_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def shown(uuid: str, topic: str, indicator: str, at: datetime) -> CardShown:
    return CardShown(uuid, "ketamine-order-sign", "order-sign", f"hi-{uuid}", topic, indicator, at)


def override(uuid: str, at: datetime, code: str | None = None, display: str | None = None,
             comment: str | None = None) -> FeedbackEntry:
    return FeedbackEntry(uuid, "overridden", at, SYSTEM if code else None, code, display, comment)


def accept(uuid: str, at: datetime) -> FeedbackEntry:
    return FeedbackEntry(uuid, "accepted", at, accepted_suggestions=(f"s-{uuid}",))


def load_known_data_set(store: FeedbackStore, now: datetime) -> None:
    """10 hypertension cards, 4 dose cards, 5 summaries (last 30 days), 1 old psychosis card, 1 unknown card."""
    day = now - timedelta(days=1)
    t = day + timedelta(minutes=1)
    store.record_cards([shown(f"H{i}", HYPER, "critical", day) for i in range(1, 11)])
    store.record_cards([shown(f"D{i}", DOSE, "warning", day) for i in range(1, 5)])
    store.record_cards([shown(f"S{i}", SUMMARY, "info", day) for i in range(1, 6)])
    store.record_cards([shown("P1", "psychosis", "critical", now - timedelta(days=40))])
    entries = [
        override("H1", t, BENEFIT, "Benefit outweighs risk after specialist review", "Discussed with psychiatry"),
        override("H2", t, BENEFIT),  # the Sandbox sends no display
        override("H3", t, BENEFIT),
        override("H4", t, ELSEWHERE),
        override("H5", t, ELSEWHERE, comment="BP documented in the anaesthesia chart"),
        override("H6", t, comment="Rechecked: 138/85"),
        accept("H7", t),
        override("H8", t, BENEFIT),
        accept("H8", t + timedelta(minutes=5)),  # changed their mind: the latest outcome counts
        override("D1", t, RESOLVED),
        accept("D2", t),
        accept("D3", t),
        accept("D4", t),
        override("P1", now - timedelta(days=40), BENEFIT),
        override("ghost", t),
        override("ghost", t + timedelta(seconds=1)),
    ]
    store.add_feedback("ketamine-order-sign", entries, received_at=now)
    # a client re-sends one report: stored once
    assert store.add_feedback("ketamine-order-sign", [override("H3", t, BENEFIT)], received_at=now).duplicates == 1


@pytest.fixture
def report(store: FeedbackStore, now: datetime) -> Report:
    load_known_data_set(store, now)
    return build_report(store, now=now, since=now - timedelta(days=30), titles=TITLES, reason_labels=REASON_LABELS)


def test_figures_per_rule(report: Report) -> None:
    rows = {f.topic: f for f in report.topics}
    assert [f.topic for f in report.topics] == [HYPER, DOSE, SUMMARY]  # highest override rate first
    h = rows[HYPER]
    assert (h.shown, h.accepted, h.overridden, h.no_feedback, h.comments) == (10, 2, 6, 2, 3)
    assert h.override_rate == pytest.approx(0.75)
    assert [(r.code, r.label, r.count) for r in h.top_reasons] == [
        (BENEFIT, "Benefit outweighs risk after specialist review", 3),
        (ELSEWHERE, "Criteria documented outside this record", 2),
        ("(comment only)", "(comment only)", 1),
    ]
    assert dict(h.shown_by_indicator) == {"critical": 10}
    d = rows[DOSE]
    assert (d.shown, d.accepted, d.overridden, d.no_feedback, d.override_rate) == (4, 3, 1, 0, 0.25)
    assert [(r.code, r.label) for r in d.top_reasons] == [(RESOLVED, RESOLVED)]  # no label known: the code
    s = rows[SUMMARY]
    assert (s.shown, s.accepted, s.overridden, s.no_feedback, s.override_rate) == (5, 0, 0, 5, None)
    t = report.totals
    assert (t.shown, t.accepted, t.overridden, t.no_feedback) == (19, 5, 7, 7)
    assert t.override_rate == pytest.approx(7 / 12)
    assert (report.unattributed_entries, report.unattributed_cards) == (2, 1)


def test_without_since_older_cards_count(store: FeedbackStore, now: datetime) -> None:
    load_known_data_set(store, now)
    full = build_report(store, now=now)
    first = full.topics[0]
    assert (first.topic, first.shown, first.overridden, first.override_rate) == ("psychosis", 1, 1, 1.0)
    assert full.totals.shown == 20


def test_text(report: Report) -> None:
    text = render_text(report)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith((HYPER, DOSE))}
    assert rows[HYPER] == ["10", "2", "6", "2", "75%", "3"]
    assert rows[DOSE] == ["4", "3", "1", "0", "25%", "0"]
    assert "override reason: Benefit outweighs risk after specialist review (3)" in text
    assert "2 entries for 1 card(s)" in text


def test_json(report: Report) -> None:
    data = json.loads(render_json(report))
    hyper = data["topics"][0]
    assert hyper["topic"] == HYPER
    assert {k: hyper[k] for k in ("shown", "accepted", "overridden", "no_feedback", "override_rate", "comments")} == {
        "shown": 10, "accepted": 2, "overridden": 6, "no_feedback": 2, "override_rate": 0.75, "comments": 3}
    assert hyper["top_reasons"][0] == {
        "code": BENEFIT, "label": "Benefit outweighs risk after specialist review", "count": 3}
    assert data["topics"][2]["override_rate"] is None
    assert data["totals"]["shown"] == 19
    assert data["unattributed"] == {"feedback_entries": 2, "cards": 1}
    assert data["since"].startswith("2026-10-24")


def test_html_is_self_contained_escaped_and_charts_the_override_rate(report: Report) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=""", page, re.IGNORECASE)  # nothing fetched from elsewhere
    assert "Uncontrolled &lt;hypertension&gt;" in page and "<hypertension>" not in page
    assert "<svg" in page
    assert 'width="330.0"' in page  # 75% of the 440-unit bar
    assert 'width="110.0"' in page  # 25%
    assert "75% (6 of 8, few responses)" in page and "no feedback yet" in page
    assert "Override rate = overridden / (accepted + overridden)" in page


def test_an_empty_store_gives_an_empty_report(store: FeedbackStore, now: datetime) -> None:
    empty = build_report(store, now=now)
    assert empty.topics == () and empty.totals.shown == 0
    assert "No cards recorded" in render_html(empty)
    assert json.loads(render_json(empty))["totals"]["override_rate"] is None


def test_report_command(store: FeedbackStore, database_url: str, now: datetime, tmp_path, capsys,
                        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    load_known_data_set(store, now)
    monkeypatch.setattr(feedback_cli, "_now", lambda: now)
    assert main(["report", "--database-url", database_url, "--since", "2026-10-24", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(t["topic"], t["shown"], t["overridden"]) for t in data["topics"]] == [
        (HYPER, 10, 6), (DOSE, 4, 1), (SUMMARY, 5, 0)]
    out = tmp_path / "report.html"
    assert main(["report", "--database-url", database_url, "--format", "html", "-o", str(out)]) == 0
    assert "<svg" in out.read_text(encoding="utf-8")


def test_report_command_rejects_a_bad_date(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["report", "--since", "last tuesday"])
    assert info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_report_command_names_an_unusable_database(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["report", "--database-url", "mysql://h/db"]) == 2
    assert "DATABASE_URL must start with" in capsys.readouterr().err


def test_report_command_does_not_create_a_missing_sqlite_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "typo.sqlite3"
    assert main(["report", "--database-url", f"sqlite:///{missing}"]) == 2
    assert "no feedback database at" in capsys.readouterr().err
    assert not missing.exists()


def test_purge_command_uses_the_configured_retention(store: FeedbackStore, database_url: str, now: datetime,
                                                     capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    load_known_data_set(store, now)  # one card 40 days old, the rest 1 day old; feedback received now
    monkeypatch.setattr(feedback_cli, "_now", lambda: now)
    monkeypatch.setenv("KETAMINE_CDS_FEEDBACK_RETENTION_DAYS", "30")
    assert main(["purge", "--database-url", database_url]) == 0
    assert "purged 1 cards shown and 0 feedback entries" in capsys.readouterr().out
    assert build_report(store, now=now).totals.shown == 19
    assert main(["purge", "--database-url", database_url, "--older-than-days", "0"]) == 0
    assert "purged 19 cards shown" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "ok"),
    [("0001-01-01", True), ("9999-12-31", True), ("0001-01-01T00:00:00Z", True), ("0001-01-01T00:00:00+09:07", False),
     ("9999-12-31T23:59:59-00:01", False), ("2026-02-30", False), ("yesterday", False)],
)
def test_since_at_the_edges_of_the_calendar_is_a_date_or_a_usage_error(text: str, ok: bool) -> None:
    if ok:
        assert feedback_cli.since_date(text).tzinfo is not None
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="not a date"):
            feedback_cli.since_date(text)


@pytest.mark.parametrize(("days", "ok"), [("0", True), ("36500", True), ("-1", False), ("36501", False),
                                          ("9" * 30, False), ("1e3", False)])
def test_purge_days_are_bounded_so_the_cut_off_is_always_a_date(days: str, ok: bool) -> None:
    if ok:
        assert feedback_cli._days(days) == int(days)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            feedback_cli._days(days)


def test_a_huge_retention_is_a_usage_error_not_a_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["purge", "--older-than-days", "9" * 12])
    assert info.value.code == 2
    assert "between 0 and 36500" in capsys.readouterr().err
