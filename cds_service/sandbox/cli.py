"""Subcommands ``evaluate`` (run the rules on a fixture or request, no server) and ``fixtures`` (list/load)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import requests

from cds_service.cards.model import Card
from cds_service.record.dates import parse_instant
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import (
    FixtureEntry,
    FixturesNotFound,
    UsageError,
    load_manifest,
)
from cds_service.sandbox.requests import ALL_HOOKS, HOOKS, PATIENT_VIEW, service_id


def register(sub: Any) -> None:
    """Add this feature's subcommands to the ketamine-cds parser."""
    ev = sub.add_parser(
        "evaluate",
        help="run the rules on a fixture bundle or a CDS Hooks request and print the cards (no server)",
        description="Run the rules without a server. INPUT is a fixture name (see 'fixtures list'), a FHIR "
        "transaction/collection Bundle (a request is generated from it and an order template), or a CDS Hooks "
        "request JSON. Fixture dates are rolled to the evaluation date first.",
    )
    ev.add_argument("input", metavar="INPUT", help="fixture name, bundle file or request file")
    ev.add_argument(
        "--hook",
        choices=ALL_HOOKS,
        help="hook to simulate for a fixture or bundle (default order-sign; patient-view: the chart opened, no order)",
    )
    ev.add_argument(
        "--order",
        metavar="TEMPLATE",
        help="order template in fhir_fixtures/orders (default: the fixture's, else iv-ketamine-standard)",
    )
    ev.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")
    ev.add_argument(
        "--now",
        type=_instant,
        metavar="DATE",
        help="evaluation instant (YYYY-MM-DD = noon UTC, or an ISO date-time; default: now)",
    )
    ev.add_argument("--fixtures-dir", metavar="DIR", help="fixture library (default: fhir_fixtures/)")
    ev.set_defaults(handler=run_evaluate)

    fx = sub.add_parser(
        "fixtures",
        help="the synthetic patient library: list, or load into a FHIR server",
        description="Synthetic FHIR R4 patients with the cards the rule catalogue expects.",
    )
    fx_sub = fx.add_subparsers(dest="fixtures_command", required=True, metavar="ACTION")
    ls = fx_sub.add_parser("list", help="name, expected cards and story of every fixture")
    ls.add_argument("--fixtures-dir", metavar="DIR")
    ls.set_defaults(handler=run_list)
    load = fx_sub.add_parser(
        "load",
        help="POST fixtures as transactions to a FHIR R4 server and print the ids it assigned",
        description="POST each fixture as a FHIR transaction (dates rolled to today) to --fhir-server and print "
        "the ids the server assigned; use the Patient id in an EHR sandbox or the CDS Hooks sandbox.",
    )
    load.add_argument(
        "--fhir-server", required=True, metavar="URL", help="FHIR R4 base URL, e.g. http://localhost:8081/fhir"
    )
    load.add_argument("--patient", action="append", metavar="NAME", help="only this fixture (repeatable)")
    load.add_argument("--now", type=_instant, metavar="DATE", help="roll dates to DATE instead of today")
    load.add_argument("--timeout", type=float, default=60.0, help="seconds per transaction (default 60)")
    load.add_argument("--fixtures-dir", metavar="DIR")
    load.set_defaults(handler=run_load)
    req = fx_sub.add_parser(
        "request",
        help="print a fixture's CDS Hooks request, dates rolled to today, ready to POST to the service",
        description="Print the CDS Hooks request for a fixture (or a bundle with --order) with every date rolled "
        "to --now (default today), e.g. ketamine-cds fixtures request eligible-mdd-iv | curl -s -X POST "
        "-H 'Content-Type: application/json' --data @- http://127.0.0.1:8080/cds-services/ketamine-order-sign",
    )
    req.add_argument("input", metavar="INPUT", help="fixture name, bundle file or request file")
    req.add_argument("--hook", choices=ALL_HOOKS, help="order-sign (default), order-select or patient-view")
    req.add_argument("--order", metavar="TEMPLATE", help="order template (default: the fixture's own)")
    req.add_argument("--now", type=_instant, metavar="DATE", help="roll dates to DATE instead of today")
    req.add_argument("--fixtures-dir", metavar="DIR")
    req.set_defaults(handler=run_request)
    burden = fx_sub.add_parser(
        "burden",
        help="alert burden: cards per topic and indicator over the whole library, mean cards per ketamine order",
        description="Run every fixture's own order through the rules (in-process, full prefetch, dates rolled to "
        "one fixed instant) and print, per topic, how many cards of each indicator fired, and the mean number of "
        "cards per ketamine order. The before/after figures of a rules change go to docs/alert-burden.md.",
    )
    burden.add_argument("--hook", choices=HOOKS, default="order-sign", help="order-sign (default) or order-select")
    burden.add_argument(
        "--now", type=_instant, metavar="DATE", help="evaluation instant (default: noon UTC on the library's anchor)"
    )
    burden.add_argument("--format", choices=("text", "json"), default="text", help="text/markdown (default) or json")
    burden.add_argument("--fixtures-dir", metavar="DIR")
    burden.set_defaults(handler=run_burden)


def _instant(value: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- evaluate ---------------------------------------------------------------------------------------------
def run_evaluate(args: argparse.Namespace) -> int:
    from cds_service.config import ConfigError
    from cds_service.hooks.errors import HookError
    from cds_service.sandbox.evaluation import evaluate, request_for, sandbox_settings

    now: datetime = args.now or datetime.now(UTC)
    try:
        settings = sandbox_settings()
        label, body, entry = request_for(args.input, hook=args.hook, order=args.order, now=now, root=args.fixtures_dir)
        answer = evaluate(body, now, settings)
    except (UsageError, ConfigError) as exc:
        print(f"ketamine-cds evaluate: {exc}", file=sys.stderr)
        return 2
    except HookError as exc:
        if args.format == "json":
            json.dump(exc.outcome(), sys.stdout, indent=2)
            print()
        else:
            print(f"{label}: the service would answer HTTP {exc.status}", file=sys.stderr)
            for issue in exc.issues:
                print(f"  - {issue.diagnostics}", file=sys.stderr)
        return 1
    cards = answer.decision.cards
    if args.format == "json":
        json.dump(answer.decision.response(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print_cards(cards, label=label, hook=str(body["hook"]), now=now, out=sys.stdout)
        if entry is not None:
            print_expectation(cards, entry, str(body["hook"]), out=sys.stdout)
    return 0


def run_request(args: argparse.Namespace) -> int:
    """Print the rolled request body; the service URL to POST it to goes to stderr."""
    from cds_service.sandbox.evaluation import LOCAL_BASE_URL, request_for

    now: datetime = args.now or datetime.now(UTC)
    try:
        _label, body, _entry = request_for(
            args.input, hook=args.hook, order=args.order, now=now, root=args.fixtures_dir
        )
    except UsageError as exc:
        print(f"ketamine-cds fixtures request: {exc}", file=sys.stderr)
        return 2
    json.dump(body, sys.stdout, indent=2, ensure_ascii=False)
    print()
    print(f"POST to {LOCAL_BASE_URL}/cds-services/{service_id(str(body['hook']))}", file=sys.stderr)
    return 0


def print_cards(cards: Sequence[Card], *, label: str, hook: str, now: datetime, out: TextIO) -> None:
    """Cards for a terminal: indicator and topic, summary, then the evidence (detail) and suggestions."""
    out.write(f"{label} · {hook} · evaluated {now.date().isoformat()} · {len(cards)} card(s)\n")
    if not cards:
        why = "nothing to say about this patient" if hook == PATIENT_VIEW else "not a ketamine or esketamine order"
        out.write(f"\n(no cards: {why})\n")
    pad = " " * 10
    for card in cards:
        out.write(f"\n{card.indicator.upper():<9} {card.topic or '?'}\n{pad}{card.summary}\n")
        for line in (card.detail or "").strip().splitlines():
            out.write(f"{pad}| {line}\n" if line.strip() else f"{pad}|\n")
        for suggestion in card.suggestions:
            actions = ", ".join(action.type for action in suggestion.actions)
            out.write(f"{pad}-> suggestion: {suggestion.label}" + (f" ({actions})" if actions else "") + "\n")
        if card.source.label:
            out.write(f"{pad}source: {card.source.label}\n")


def print_expectation(cards: Sequence[Card], entry: FixtureEntry, hook: str, *, out: TextIO) -> None:
    """Compare the cards with the manifest's expectation for this fixture (summary first, rest any order)."""
    actual = [(card.topic or "?", card.indicator) for card in cards]
    try:
        expected = [c.as_tuple() for c in entry.expected_for(hook)]
    except KeyError:
        out.write(f"\nmanifest states no {hook} cards for {entry.name}\n")
        return
    same = sorted(actual) == sorted(expected) and actual[:1] == expected[:1]
    shown = ", ".join(f"{t} ({i})" for t, i in expected) or "no cards"
    out.write(f"\nmanifest expects: {shown}\n")
    out.write("result: MATCHES the manifest\n" if same else "result: DIFFERS from the manifest\n")


# --- fixtures ---------------------------------------------------------------------------------------------
def run_burden(args: argparse.Namespace) -> int:
    from cds_service.config import ConfigError
    from cds_service.hooks.errors import HookError
    from cds_service.sandbox.burden import measure, render_json, render_text

    try:
        manifest = load_manifest(args.fixtures_dir)
        burden = measure(manifest, hook=args.hook, now=args.now)
    except (FixturesNotFound, UsageError, ConfigError) as exc:
        print(f"ketamine-cds fixtures burden: {exc}", file=sys.stderr)
        return 2
    except HookError as exc:
        print(f"ketamine-cds fixtures burden: a fixture would get HTTP {exc.status}", file=sys.stderr)
        return 1
    sys.stdout.write(render_json(burden) if args.format == "json" else render_text(burden))
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        manifest = load_manifest(args.fixtures_dir)
    except FixturesNotFound as exc:
        print(f"ketamine-cds fixtures list: {exc}", file=sys.stderr)
        return 2
    print(f"{len(manifest.entries)} fixtures in {manifest.root} (anchor {manifest.anchor.isoformat()})")
    for e in manifest.entries:
        cards = ", ".join(f"{c.topic}:{c.indicator}" for c in e.expected) or "no cards"
        print(f"\n{e.name}  [{e.order_template}]\n  expect: {cards}")
        if e.expected_patient_view is not None:
            shown = ", ".join(f"{c.topic}:{c.indicator}" for c in e.expected_patient_view) or "no cards"
            print(f"  patient-view: {shown}")
        print(f"  {e.story}")
    return 0


def load_bundle(url: str, bundle: Mapping[str, Any], *, timeout: float) -> list[str]:
    """POST one transaction Bundle to the FHIR base ``url``; the locations the server assigned, in order.

    Raises ``UsageError`` with the server's OperationOutcome diagnostics when it refuses the transaction.
    """
    try:
        resp = requests.post(
            url.rstrip("/"),
            data=json.dumps(bundle),
            headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
            timeout=(10.0, timeout),
        )
    except requests.RequestException as exc:
        raise UsageError(f"could not reach {url}: {type(exc).__name__}") from exc
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code >= 300:
        issues = "; ".join(str(i.get("diagnostics") or i.get("code")) for i in body.get("issue") or ()) or resp.reason
        raise UsageError(f"{url} answered HTTP {resp.status_code}: {issues}")
    if body.get("resourceType") != "Bundle":
        raise UsageError(f"{url} did not answer with a transaction-response Bundle")
    return [str((e.get("response") or {}).get("location") or "?") for e in body.get("entry") or ()]


def _short(location: str) -> str:
    """``http://x/fhir/Patient/12/_history/1`` -> ``Patient/12``."""
    parts = location.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else location


def run_load(args: argparse.Namespace) -> int:
    try:
        manifest = load_manifest(args.fixtures_dir)
    except FixturesNotFound as exc:
        print(f"ketamine-cds fixtures load: {exc}", file=sys.stderr)
        return 2
    wanted = args.patient or [e.name for e in manifest.entries]
    try:
        entries = [manifest.get(n) for n in wanted]
    except KeyError as exc:
        print(f"ketamine-cds fixtures load: {exc.args[0]}", file=sys.stderr)
        return 2
    now: datetime = args.now or datetime.now(UTC)
    failed = 0
    print(f"loading {len(entries)} fixture(s) into {args.fhir_server} (dates rolled to {now.date().isoformat()})")
    for entry in entries:
        bundle = roller.roll(manifest.bundle(entry), now, anchor=manifest.anchor)
        try:
            locations = load_bundle(args.fhir_server, bundle, timeout=args.timeout)
        except UsageError as exc:
            failed += 1
            print(f"{entry.name}: FAILED: {exc}", file=sys.stderr)
            continue
        ids = [_short(loc) for loc in locations]
        patient = next((i for i in ids if i.startswith("Patient/")), "?")
        counts: dict[str, int] = {}
        for i in ids:
            counts[i.split("/")[0]] = counts.get(i.split("/")[0], 0) + 1
        summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        print(f"{entry.name}: {patient}  ({summary})")
    return 1 if failed else 0
