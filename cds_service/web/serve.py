"""``ketamine-cds serve``: the service under gunicorn (production WSGI server), configured in code.

Defaults need no configuration: ``ketamine-cds serve --host 127.0.0.1 --port 8080``. Workers, threads and
the worker timeout come from the options or ``KETAMINE_CDS_WORKERS/THREADS/TIMEOUT``. The app is built
once in the master as a configuration check, so a bad configuration stops the command with a clear
message before any worker starts; each worker then builds its own app after the fork (no database
connection or HTTP pool is shared across processes).

Each worker calls ``gc.freeze()`` once its app is built (see :class:`GunicornApplication`). Server hooks:
``cds_service.observability.metrics.gunicorn_on_starting`` (the master clears the Prometheus
multi-process directory) and ``gunicorn_child_exit``. gunicorn's control socket (new in gunicorn 27, one
shared path per working directory) is off: nothing uses it, and two servers started from the same
directory would fight over it.

``benchmarks/serve.py`` runs its floor app through :class:`GunicornApplication` and :func:`gunicorn_options`
too, so the benchmark compares the service with the floor under exactly these options.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from cds_service.config import ConfigError, Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer (got {raw!r})") from exc


def register(sub: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser = sub.add_parser("serve", help="run the CDS Hooks service (gunicorn)", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (env KETAMINE_CDS_WORKERS, default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per worker (env KETAMINE_CDS_THREADS, default 4)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds before a silent worker is restarted (env KETAMINE_CDS_TIMEOUT, default 30)")
    parser.set_defaults(handler=run)


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    workers = args.workers if args.workers is not None else _env_int("KETAMINE_CDS_WORKERS", 2)
    threads = args.threads if args.threads is not None else _env_int("KETAMINE_CDS_THREADS", 4)
    timeout = args.timeout if args.timeout is not None else _env_int("KETAMINE_CDS_TIMEOUT", 30)
    if workers < 1 or threads < 1 or timeout < 1:
        raise ConfigError("workers, threads and timeout must be at least 1")
    options: dict[str, Any] = {
        "bind": f"{args.host}:{args.port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout,
        "graceful_timeout": timeout,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": None,  # one JSON line per request comes from the request log, without PHI
        "errorlog": "-",
        "limit_request_line": 8190,
        "proc_name": "ketamine-cds",
        "control_socket_disable": True,
    }
    options.update(_server_hooks())
    return options


def _server_hooks() -> dict[str, Callable[..., Any]]:
    from cds_service.observability import metrics

    return {"on_starting": metrics.gunicorn_on_starting, "child_exit": metrics.gunicorn_child_exit}


class GunicornApplication(BaseApplication):
    """gunicorn configured in code: ``options`` (see :func:`gunicorn_options`); each worker builds its app
    with ``factory`` after the fork."""

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
        # The ~110,000 objects that live as long as the worker (modules, knowledge base, schemas, the app)
        # leave the garbage collector's generations. Otherwise every full collection, which allocating a
        # large parsed request body (thousands of FHIR dicts) soon triggers, traverses all of them again:
        # json.loads of a 2.5 MB prefetch took about three times as long. Frozen objects are never
        # scanned again (nor freed, which is moot: they live until the worker exits).
        gc.freeze()
        return app


def run(args: argparse.Namespace) -> int:
    from cds_service.web.app import create_app

    def factory() -> Any:
        return create_app(Settings.from_env())

    try:
        options = gunicorn_options(args)
        factory()  # configuration check in the master: fail here, loudly, not in every worker
    except ConfigError as exc:
        print(f"ketamine-cds: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # e.g. KnowledgeError for a bad KETAMINE_CDS_RULES_CONFIG file
        print(f"ketamine-cds: {exc}", file=sys.stderr)
        return 2
    GunicornApplication(factory, options).run()
    return 0
