"""``ketamine-cds serve``: the service under gunicorn (production WSGI server), configured in code.

Defaults need no configuration: ``ketamine-cds serve --host 127.0.0.1 --port 8080``. Workers, threads and
the worker timeout come from the options or ``KETAMINE_CDS_WORKERS/THREADS/TIMEOUT`` (bounded: a value out
of range is a configuration error). The app is built once in the master as a configuration check, without
its feedback store (``create_app(open_store=False)``), so a bad configuration stops the command with a
clear message before any worker starts, and the master holds no database connection and runs no thread
that workers would inherit; each worker then builds its own app after the fork. A SQLite feedback store
whose directory cannot be written is reported once, at start. gunicorn's own log lines are JSON
(:class:`JsonGunicornLogger`), like the service's.

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
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from cds_service.config import ConfigError, Settings, int_setting
from cds_service.observability.filesystem import directory_write_problem
from cds_service.observability.request_log import JsonFormatter

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_WORKERS, MAX_THREADS, MAX_TIMEOUT = 64, 256, 3600


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


def _server_int(option_value: int | None, option: str, name: str, default: int, maximum: int) -> int:
    """The option when given, else the variable, else ``default``: at least 1, at most ``maximum``."""
    if option_value is None:
        return int_setting(os.environ, name, default, minimum=1, maximum=maximum)
    if not 1 <= option_value <= maximum:
        raise ConfigError(f"{option} must be between 1 and {maximum} (got {option_value})")
    return option_value


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    workers = _server_int(args.workers, "--workers", "KETAMINE_CDS_WORKERS", 2, MAX_WORKERS)
    threads = _server_int(args.threads, "--threads", "KETAMINE_CDS_THREADS", 4, MAX_THREADS)
    timeout = _server_int(args.timeout, "--timeout", "KETAMINE_CDS_TIMEOUT", 30, MAX_TIMEOUT)
    if not 0 <= args.port <= 65535:  # 0: any free port
        raise ConfigError(f"--port must be between 0 and 65535 (got {args.port})")
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
        "logger_class": JsonGunicornLogger,
        "limit_request_line": 8190,
        "proc_name": "ketamine-cds",
        "control_socket_disable": True,
    }
    options.update(_server_hooks())
    return options


class JsonGunicornLogger(GunicornLogger):
    """gunicorn's own log lines (booting, worker timeouts, signals) as JSON, like the service's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


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
        settings = Settings.from_env()
        # Configuration check in the master: fail here, loudly, not in every worker. The master never opens
        # the database nor starts a thread (open_store=False): workers fork from it and open their own.
        create_app(settings, open_store=False)
    except ConfigError as exc:
        print(f"ketamine-cds: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # e.g. KnowledgeError for a bad KETAMINE_CDS_RULES_CONFIG file
        print(f"ketamine-cds: {exc}", file=sys.stderr)
        return 2
    _report_unwritable_store(settings)
    GunicornApplication(factory, options).run()
    return 0


def _report_unwritable_store(settings: Settings) -> None:
    """Say at start, once, why a SQLite feedback store cannot open (e.g. a read-only root filesystem)."""
    from cds_service.database import sqlite_file

    path = sqlite_file(settings.database_url)
    if path is None:
        return
    problem = directory_write_problem(path.parent)
    if problem is None and path.exists() and not os.access(path, os.W_OK):
        problem = f"{path} is not writable by uid {os.getuid()}"
    if problem is None:
        return
    log.error(
        "the SQLite feedback store cannot open: %s. It holds the cards shown, the feedback and the JWT replay "
        "cache: until it can open, /readyz answers 503 and, with authentication on, every call answers 503. "
        "Mount a writable volume at %s (the image declares one; docker run -v ketamine-cds-data:%s) or set "
        "DATABASE_URL to a PostgreSQL database.", problem, path.parent, path.parent,
    )
