"""Subcommands ``report`` (override figures per rule) and ``purge`` (retention)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cds_service.config import MAX_RETENTION_DAYS, ConfigError, Settings
from cds_service.database import sqlite_file
from cds_service.feedback.report import build_report, render
from cds_service.feedback.store import FeedbackStore, FeedbackStoreError
from cds_service.feedback.validation import parse_rfc3339

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add this feature's subcommands to the ketamine-cds parser."""
    report = sub.add_parser(
        "report",
        help="override report per rule (cards shown, accepted, overridden, reasons)",
        description="Per rule topic: cards shown, accepted, overridden, override rate, top override "
        "reasons and number of comments, from the feedback store (DATABASE_URL).",
    )
    report.add_argument("--since", type=since_date, metavar="DATE",
                        help="only cards shown since DATE (YYYY-MM-DD, UTC, or an RFC 3339 date-time)")
    report.add_argument("--format", choices=("text", "json", "html"), default="text",
                        help="text (default), json, or a self-contained html page")
    report.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    _database_arg(report)
    report.set_defaults(handler=run_report)

    purge = sub.add_parser(
        "purge",
        help="delete cards shown and feedback older than the retention period",
        description="Delete card records and feedback older than N days "
        "(default KETAMINE_CDS_FEEDBACK_RETENTION_DAYS, 730).",
    )
    purge.add_argument("--older-than-days", type=_days, metavar="N",
                       help="retention in days (default: the configured retention)")
    _database_arg(purge)
    purge.set_defaults(handler=run_purge)


def _database_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", metavar="URL",
                        help="feedback database (default: DATABASE_URL, else the SQLite file)")


def since_date(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 date-time, as an aware UTC datetime."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        parsed = parse_rfc3339(value)
        if parsed is None:
            raise argparse.ArgumentTypeError(
                f"not a date: {value!r} (use YYYY-MM-DD or 2026-01-31T00:00:00Z)"
            ) from None
        return parsed
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {value!r}") from None
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(f"the number of days must be between 0 and {MAX_RETENTION_DAYS}")
    return days


def _now() -> datetime:
    return datetime.now(UTC)


def _settings() -> Settings:
    return Settings.from_env()


def _open(args: argparse.Namespace, settings: Settings) -> FeedbackStore:
    """Open an existing store: a mistyped SQLite path must not silently create an empty database."""
    url = args.database_url or settings.database_url
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise FeedbackStoreError(f"no feedback database at {path} (set DATABASE_URL or --database-url)")
    return FeedbackStore.open(url)


def _labels() -> tuple[Mapping[str, str], Mapping[str, str]]:
    """Rule titles and override-reason displays from the knowledge base; empty when it cannot load."""
    try:
        from cds_service.knowledge.loader import default_knowledge

        kb = default_knowledge()
    except Exception as exc:  # labels are a nicety: the report falls back to codes
        log.debug("knowledge base not loaded for report labels: %s", exc)
        return {}, {}
    titles = {code: topic.title for code, topic in kb.topics.items()}
    reasons = {code: display for topic in kb.topics.values() for code, display in topic.override_reasons}
    return titles, reasons


def run_report(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
        store = _open(args, settings)
    except (ConfigError, FeedbackStoreError) as exc:
        print(f"ketamine-cds report: {exc}", file=sys.stderr)
        return 2
    try:
        titles, reasons = _labels()
        report = build_report(
            store, now=_now(), since=args.since, titles=titles, reason_labels=reasons
        )
    finally:
        store.close()
    text = render(report, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def run_purge(args: argparse.Namespace) -> int:
    try:
        settings = _settings()
        store = _open(args, settings)
    except (ConfigError, FeedbackStoreError) as exc:
        print(f"ketamine-cds purge: {exc}", file=sys.stderr)
        return 2
    days = settings.feedback_retention_days if args.older_than_days is None else args.older_than_days
    cutoff = _now() - timedelta(days=days)
    try:
        result = store.purge(cutoff)
    finally:
        store.close()
    print(
        f"purged {result.cards_deleted} cards shown and {result.feedback_deleted} feedback entries "
        f"older than {cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')} ({days} days)"
    )
    return 0
