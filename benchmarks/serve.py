"""Run any WSGI app factory exactly as ``ketamine-cds serve`` runs the service.

``python -m benchmarks.serve benchmarks.floor:create_floor_app --host 127.0.0.1 --port 8081``
takes the same ``--workers/--threads/--timeout`` options and ``KETAMINE_CDS_*`` variables as
``ketamine-cds serve`` and starts the app with ``cds_service.web.serve``'s own gunicorn application class
and options (server hooks, ``gc.freeze()`` in each worker, control socket off): the floor runs under
exactly the server configuration of the service.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from cds_service.web import serve


def load_factory(spec: str) -> Callable[[], Any]:
    module_name, _, attr = spec.partition(":")
    factory: Callable[[], Any] = getattr(importlib.import_module(module_name), attr or "create_app")
    return factory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.serve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve.register(sub)  # the production "serve" options, unchanged
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.error("give an app factory, e.g. benchmarks.floor:create_floor_app")
    spec, rest = argv[0], argv[1:]
    args = parser.parse_args(["serve", *rest])
    serve.GunicornApplication(load_factory(spec), serve.gunicorn_options(args)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
