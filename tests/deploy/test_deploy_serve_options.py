"""``ketamine-cds serve``'s gunicorn application and options, and the benchmark floor's use of them."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks import serve as bench_serve
from cds_service.observability import metrics
from cds_service.web import serve


def _args(**overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 8099, "workers": 2, "threads": 3, "timeout": 17}
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave the test process as it was


def test_options_install_the_metrics_server_hooks_and_disable_the_control_socket() -> None:
    options = serve.gunicorn_options(_args())
    assert options["on_starting"] is metrics.gunicorn_on_starting
    assert options["child_exit"] is metrics.gunicorn_child_exit
    assert options["control_socket_disable"] is True


def test_application_applies_every_option_to_the_gunicorn_config() -> None:
    app = serve.GunicornApplication(lambda: None, serve.gunicorn_options(_args()))
    cfg = app.cfg
    assert cfg.bind == ["127.0.0.1:8099"]
    assert (cfg.workers, cfg.threads, cfg.timeout, cfg.worker_class_str) == (2, 3, 17, "gthread")
    assert cfg.control_socket_disable is True
    assert cfg.on_starting is metrics.gunicorn_on_starting
    assert cfg.child_exit is metrics.gunicorn_child_exit


def test_worker_freezes_the_heap_once_its_app_is_built(unfrozen: None) -> None:
    built: list[int] = []

    def factory() -> str:
        built.append(gc.get_freeze_count())
        return "the app"

    app = serve.GunicornApplication(factory, serve.gunicorn_options(_args()))
    assert gc.get_freeze_count() == 0
    assert app.load() == "the app"
    assert built == [0]  # not frozen before the app exists: the app's own objects are frozen too
    assert gc.get_freeze_count() > 0


def test_benchmark_floor_runs_under_the_service_application_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[serve.GunicornApplication] = []
    monkeypatch.setattr(serve.GunicornApplication, "run", lambda self: started.append(self))
    assert bench_serve.main(["benchmarks.floor:create_floor_app", "--host", "127.0.0.1", "--port", "8099",
                             "--workers", "2", "--threads", "3", "--timeout", "17"]) == 0
    (app,) = started
    assert type(app) is serve.GunicornApplication
    expected = serve.GunicornApplication(lambda: None, serve.gunicorn_options(_args()))
    for name in ("bind", "workers", "threads", "timeout", "worker_class_str", "keepalive", "preload_app",
                 "control_socket_disable", "on_starting", "child_exit", "proc_name", "limit_request_line"):
        assert getattr(app.cfg, name) == getattr(expected.cfg, name), name
