"""Subcommand ``replay``: what the rules would have said, replayed on an export, before go-live.

``ketamine-cds replay SOURCE [SOURCE ...] (--actual-orders | --order TEMPLATE) [options]`` and
``ketamine-cds replay merge REPORT [REPORT ...] [options]``. Exit status: 0 done (bad input is counted in
the report, never fatal); 2 a usage error, a missing or empty SOURCE, or shards that do not make one run;
130 interrupted (run the same command with ``--resume`` to continue).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cds_service.record.dates import parse_instant as read_operator_instant
from cds_service.replay.report import FORMATS, render
from cds_service.replay.shard import WHOLE, Shard

if TYPE_CHECKING:
    from cds_service.knowledge.model import Knowledge
    from cds_service.replay.patient import Plan

USAGE = (
    "ketamine-cds replay SOURCE [SOURCE ...] (--actual-orders | --order TEMPLATE) [options]\n"
    "       ketamine-cds replay merge REPORT [REPORT ...] [--format F] [--output FILE] [--with-ids FILE]"
)
DESCRIPTION = """\
Silent-mode replay: run the service's own pipeline (no HTTP, no metrics, no feedback records) on a FHIR
export and report how many cards it would have shown, of which kinds, on how many patients, and what data
was missing. SOURCE is a FHIR Bulk Data folder (NDJSON files per type, any split, plain or gzip), a folder
of Bundles, or one Bundle.

--actual-orders replays every ketamine or esketamine MedicationRequest as of its authoredOn: the record
holds only what was known then. --order TEMPLATE replays one hypothetical order (a template of
fhir_fixtures/orders, or a template file) for every patient of --cohort.

No output names a patient unless --with-ids FILE is given. merge combines the --format json reports (and
--with-ids lists) of the shards of one run (--shard I/N) into the report of the whole run."""


def register(sub: Any) -> None:
    """Add ``replay`` to the ketamine-cds parser."""
    parser = sub.add_parser(
        "replay",
        help="replay the rules silently on a FHIR export (Bulk Data NDJSON or Bundles) and report the cards",
        usage=USAGE,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_replay, replay_parser=parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="export folder(s) or Bundle file(s); "
                        "or 'merge' followed by shard reports")  # fmt: skip
    mode = parser.add_argument_group("what to replay (one of)")
    mode.add_argument("--actual-orders", action="store_true", help="every ketamine/esketamine order, as of its date")
    mode.add_argument("--order", metavar="TEMPLATE", help="a hypothetical order: template name or template file")
    parser.add_argument("--cohort", choices=("depression", "all"), default="depression",
                        help="with --order: patients with an active depressive disorder (default) or all")
    parser.add_argument("--now", metavar="DATE", help="with --order: the order's instant (YYYY-MM-DD = noon UTC, or "
                        "an ISO date-time; default today at noon UTC)")
    parser.add_argument("--hook", choices=("order-sign", "order-select"), default="order-sign",
                        help="the service to replay (default order-sign)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    parser.add_argument("--output", metavar="FILE", help="write the report here (default: standard output)")
    parser.add_argument("--with-ids", metavar="FILE", help="also write a CSV naming each patient and order, for "
                        "chart review (it holds patient identifiers: created readable by you only)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default: the CPUs available)")
    parser.add_argument("--shard", metavar="I/N", help="replay only shard I of N (I from 0); merge the reports")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of the same command")
    parser.add_argument("--work-dir", metavar="DIR", help="the run's state (a copy of the export: patient data; "
                        "default: next to --output, else ./ketamine-cds-replay.work); removed when done")
    parser.add_argument("--keep-work", action="store_true", help="keep the work directory when done")
    parser.add_argument("--rules-config", metavar="FILE", help="a deployment's rules override file "
                        "(default: KETAMINE_CDS_RULES_CONFIG, as the service reads it)")
    parser.add_argument("--fixtures-dir", metavar="DIR", help="where --order TEMPLATE names are looked up "
                        "(default: fhir_fixtures/)")
    parser.add_argument("--quiet", action="store_true", help="no progress and no summary on stderr")


class UsageError(Exception):
    """The command line cannot be run as given (exit status 2)."""


def run_replay(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        if args.sources[0] == "merge":
            return _merge(args, err)
        return _replay(args, err)
    except UsageError as exc:
        err.write(f"ketamine-cds replay: {exc}\n")
        return 2
    except KeyboardInterrupt:
        err.write("\nketamine-cds replay: interrupted; run the same command with --resume to continue\n")
        return 130


def _replay(args: argparse.Namespace, err: TextIO) -> int:
    from cds_service.knowledge.loader import ENV_VAR, KnowledgeError, load_knowledge
    from cds_service.replay.run import RunError, RunOptions, run, saved_parameters
    from cds_service.replay.source import SourceError

    shard = _shard(args.shard)
    work_dir = Path(args.work_dir) if args.work_dir else _default_work_dir(args.output, shard)
    saved = saved_parameters(work_dir) if args.resume else None
    plan, template_name = _plan(args, saved_now=saved.get("now") if saved else None)
    for name, path in (("--output", args.output), ("--with-ids", args.with_ids)):
        _check_writable(name, path)
    rules_config = args.rules_config or os.environ.get(ENV_VAR) or None
    try:
        kb = load_knowledge(rules_config)
    except (KnowledgeError, OSError) as exc:
        raise UsageError(f"the knowledge base could not be loaded: {exc}") from exc
    options = RunOptions(
        sources=tuple(args.sources),
        plan=plan,
        template_name=template_name,
        shard=shard,
        workers=_workers(args.workers),
        work_dir=work_dir,
        resume=args.resume,
        keep_work=args.keep_work,
        rules_config=rules_config,
        progress=not args.quiet,
    )
    try:
        summary = run(options, kb, with_ids=Path(args.with_ids) if args.with_ids else None, err=err)
    except (SourceError, RunError) as exc:
        raise UsageError(str(exc)) from exc
    _write(render(summary.document, args.format, _titles(kb)), args.output)
    if not args.quiet:
        doc, seconds = summary.document, summary.seconds
        replaying = seconds.get("replay", 0.0)
        rate = f"; {summary.replayed_now / replaying:,.0f} patients/s" if replaying and summary.replayed_now else ""
        err.write(
            f"replay: {summary.patients:,} patients ({doc['patients']:,} evaluated), {doc['orders']:,} orders, "
            f"{doc['cards']:,} cards in {sum(seconds.values()):,.1f} s (reading {seconds.get('index', 0):,.1f} s"
            f"{rate})\n"
        )
    return 0


def _titles(kb: Knowledge) -> dict[str, str]:
    """Rule titles by topic code, for the text and HTML reports."""
    return {code: topic.title for code, topic in kb.topics.items()}


def _merge(args: argparse.Namespace, err: TextIO) -> int:
    from cds_service.knowledge.loader import KnowledgeError, default_knowledge
    from cds_service.replay import ids
    from cds_service.replay.merge import MergeError, collect, merge_reports

    given = {
        "--actual-orders": args.actual_orders, "--order": args.order, "--now": args.now, "--shard": args.shard,
        "--resume": args.resume, "--work-dir": args.work_dir, "--workers": args.workers,
        "--rules-config": args.rules_config,
    }  # fmt: skip
    wrong = [name for name, value in given.items() if value]
    if wrong:
        raise UsageError(f"merge takes reports, --format, --output and --with-ids only (not {', '.join(wrong)})")
    if len(args.sources) < 2:
        raise UsageError("merge needs the shards' JSON reports (files or folders)")
    try:
        inputs = collect(args.sources[1:], ids.is_list)
        document = merge_reports(inputs.reports)
        if args.with_ids:
            if not inputs.id_lists:
                raise MergeError("--with-ids: no --with-ids list of the shards among the inputs")
            ids.merge_lists(inputs.id_lists, Path(args.with_ids))
        elif inputs.id_lists:
            raise MergeError("id lists given: name the merged list with --with-ids FILE")
    except (MergeError, ids.IdsError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        titles = _titles(default_knowledge())
    except (KnowledgeError, OSError):  # titles only label the rows: the codes stand on their own
        titles = {}
    _write(render(document, args.format, titles), args.output)
    if not args.quiet:
        err.write(f"replay merge: {len(inputs.reports)} shard report(s), {document['orders']:,} orders\n")
    return 0


def _plan(args: argparse.Namespace, *, saved_now: str | None = None) -> tuple[Plan, str | None]:
    """The plan of the command line; ``saved_now``: the instant of the run being resumed (when --now is not
    given, a resumed template run keeps its instant, even on another day)."""
    from cds_service.replay.patient import ACTUAL_ORDERS, TEMPLATE_ORDER, Plan  # the service: loaded when used

    if args.actual_orders == bool(args.order):
        raise UsageError("give exactly one of --actual-orders and --order TEMPLATE")
    if args.actual_orders:
        if args.now:
            raise UsageError("--now applies to --order: with --actual-orders each order is replayed at its own date")
        return Plan(mode=ACTUAL_ORDERS, hook=args.hook), None
    if args.now:
        now = parse_instant(args.now)
    elif saved_now:
        now = parse_instant(saved_now)
    else:
        now = datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC)
    name, template = _template(args.order, args.fixtures_dir)
    return Plan(mode=TEMPLATE_ORDER, hook=args.hook, cohort=args.cohort, template=template, now=now), name


def _template(value: str, fixtures_dir: str | None) -> tuple[str, dict[str, Any]]:
    """(name, template) for a template name of the fixture library or a template file."""
    from cds_service.sandbox.fixtures import FixturesNotFound
    from cds_service.sandbox.requests import load_template

    path = Path(value)
    if path.suffix == ".json" or path.is_file():
        try:
            template = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--order {value}: not a readable JSON template ({exc})") from exc
    else:
        try:
            template = load_template(value, fixtures_dir)
        except KeyError as exc:
            raise UsageError(f"--order: {exc.args[0]}") from exc
        except FixturesNotFound as exc:
            raise UsageError(f"--order {value}: {exc}") from exc
    resource = template.get("resource") if isinstance(template, dict) else None
    if not isinstance(resource, dict) or resource.get("resourceType") != "MedicationRequest":
        raise UsageError(f"--order {value}: a template holds a MedicationRequest under 'resource'")
    return str(template.get("name") or path.stem), template


def parse_instant(value: str) -> datetime:
    """``YYYY-MM-DD`` (noon UTC) or an ISO date-time (UTC when it has no offset): ``record.dates.parse_instant``."""
    try:
        return read_operator_instant(value)
    except ValueError as exc:
        raise UsageError(f"--now: {exc}") from None


def _shard(value: str | None) -> Shard:
    if not value:
        return WHOLE
    try:
        return Shard.parse(value)
    except ValueError as exc:
        raise UsageError(f"--shard: {exc}") from exc


def _workers(value: int | None) -> int:
    if value is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    if value < 1:
        raise UsageError(f"--workers must be at least 1 (got {value})")
    return value


def _default_work_dir(output: str | None, shard: Shard) -> Path:
    if output:
        return Path(f"{output}.work")
    suffix = "" if shard.is_whole else f"-shard-{shard.index}-of-{shard.count}"
    return Path(f"ketamine-cds-replay{suffix}.work")


def _check_writable(option: str, value: str | None) -> None:
    """Refuse at once a report path that could not be written at the end of a long run."""
    if not value:
        return
    folder = Path(value).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK) or Path(value).is_dir():
        raise UsageError(f"{option} {value}: cannot write there")


def _write(text: str, output: str | None) -> None:
    if not output:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
