"""Run any WSGI app factory under the production gunicorn options of ``ketamine-cds serve``.

``python -m benchmarks.serve benchmarks.floor:create_floor_app --host 127.0.0.1 --port 8081``
takes the same ``--workers/--threads/--timeout`` options and ``KETAMINE_CDS_*`` variables as
``ketamine-cds serve`` and passes them through ``cds_service.web.serve.gunicorn_options``, so the floor
app runs under exactly the server configuration of the service. Differences, none of which costs the
floor time: the control socket is off (several servers run side by side), the master clears the
Prometheus directory at start, and each worker calls ``gc.freeze()`` once its app is built.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from cds_service.observability import metrics
from cds_service.web import serve


class _App(BaseApplication):
    def __init__(self, factory: Callable[[], Any], options: Mapping[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        app = self._factory()
        # Long-lived objects (imports, the app) leave the collector's generations: a large request body
        # then no longer makes the garbage collector rescan the whole heap. The floor is the cheapest
        # possible server, so it gets this; the service gets it only if `ketamine-cds serve` does it.
        gc.freeze()
        return app


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
    options = dict(serve.gunicorn_options(args))
    options.setdefault("on_starting", metrics.gunicorn_on_starting)
    options.setdefault("control_socket_disable", True)  # several servers run side by side here
    _App(load_factory(spec), options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
