"""The ``ketamine-cds`` command. Each subcommand lives with the feature it drives."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cds_service.feedback import cli as feedback_cli
from cds_service.sandbox import cli as sandbox_cli
from cds_service.web import serve as serve_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ketamine-cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cli.register(sub)  # serve
    sandbox_cli.register(sub)  # evaluate, fixtures
    feedback_cli.register(sub)  # report, purge
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
