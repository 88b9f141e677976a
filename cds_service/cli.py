"""The ``ketamine-cds`` command. Each subcommand lives with the feature it drives."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cds_service.feedback import cli as feedback_cli
from cds_service.replay import cli as replay_cli
from cds_service.sandbox import cli as sandbox_cli
from cds_service.web import serve as serve_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ketamine-cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cli.register(sub)  # serve
    sandbox_cli.register(sub)  # evaluate, fixtures
    feedback_cli.register(sub)  # report, purge
    replay_cli.register(sub)  # replay, replay merge
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except BrokenPipeError:
        # The reader went away (e.g. `ketamine-cds fixtures list | head`): not an error, and no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
