"""``ketamine-cds serve``'s gunicorn application and options, and the benchmark floor's use of them."""

from __future__ import annotations

import argparse
import gc
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import serve as bench_serve
from cds_service.config import ConfigError, Settings
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


def test_an_unwritable_sqlite_directory_is_said_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    """/proc refuses new files even to root: the read-only root filesystem of `docker run --read-only`."""
    settings = Settings(database_url="sqlite:////proc/ketamine-cds/feedback.sqlite3")
    with caplog.at_level(logging.ERROR):
        serve._report_unwritable_store(settings)
    (record,) = caplog.records
    message = record.getMessage()
    assert "SQLite feedback store cannot open" in message and "/proc/ketamine-cds is not writable" in message
    assert "-v ketamine-cds-data:/proc/ketamine-cds" in message and "PostgreSQL" in message


def test_a_writable_sqlite_directory_or_postgresql_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for url in (f"sqlite:///{tmp_path / 'new' / 'feedback.sqlite3'}", "postgresql://u:p@db.example.org/x"):
        serve._report_unwritable_store(Settings(database_url=url))
    assert caplog.records == []


@pytest.mark.parametrize(
    ("overrides", "env", "named"),
    [({"workers": 0}, {}, "--workers"), ({"threads": 257}, {}, "--threads"), ({"timeout": 3601}, {}, "--timeout"),
     ({"workers": None}, {"KETAMINE_CDS_WORKERS": "65"}, "KETAMINE_CDS_WORKERS"),
     ({"threads": None}, {"KETAMINE_CDS_THREADS": "9" * 30}, "KETAMINE_CDS_THREADS"),
     ({"port": 65536}, {}, "--port"), ({"port": -1}, {}, "--port")],
)
def test_server_numbers_out_of_range_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any], env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        serve.gunicorn_options(_args(**overrides))


@pytest.mark.parametrize(("name", "low", "high"), [("workers", 1, 64), ("threads", 1, 256), ("timeout", 1, 3600)])
def test_server_numbers_at_their_bounds_are_accepted(name: str, low: int, high: int) -> None:
    for value in (low, high):
        assert serve.gunicorn_options(_args(**{name: value}))[name] == value
