"""``ketamine-cds serve`` for real (gunicorn on loopback, 2 workers), seen from ``/proc``: the master opens
no database connection and runs no thread (the README promises it; workers fork from it), its own log
lines are JSON, and an unwritable SQLite directory or Prometheus directory is said loudly at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.deploy_support import REPO
from tests.deploy.test_deploy_metrics import _free_port, _wait

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process table in /proc")


@dataclass
class Server:
    base: str
    master: int
    stderr_path: Path

    def workers(self) -> list[int]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
            if len(children) == 2:
                return [int(c) for c in children]
            time.sleep(0.1)
        raise AssertionError("gunicorn did not start 2 workers")

    def log_lines(self) -> list[str]:
        return [line for line in self.stderr_path.read_text().splitlines() if line.strip()]


def status_of(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def serve(tmp_path: Path, **env_overrides: str) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KETAMINE_CDS_", "PROMETHEUS_"))}
    env.update({"KETAMINE_CDS_AUTH": "off", "PYTHONPATH": str(REPO),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), **env_overrides})
    port = _free_port()
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--threads", "2"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )
        server = Server(f"http://127.0.0.1:{port}", proc.pid, stderr_path)
        try:
            _wait(f"{server.base}/healthz", proc)  # type: ignore[arg-type]
            yield server
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def open_files(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return out


def tcp_peers(pid: int) -> set[int]:
    """Remote ports of the established TCP connections of ``pid`` (from /proc/net/tcp and its socket fds)."""
    inodes = {link[len("socket:["):-1] for link in open_files(pid) if link.startswith("socket:[")}
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def test_master_holds_no_sqlite_file_and_no_thread_and_every_log_line_is_json(tmp_path: Path) -> None:
    database = tmp_path / "data" / "feedback.sqlite3"
    with serve(tmp_path, DATABASE_URL=f"sqlite:///{database}") as server:
        workers = server.workers()
        assert status_of(f"{server.base}/readyz")[0] == 200
        assert any(str(database) in path for w in workers for path in open_files(w)), "no worker opened the store"
        assert not any(str(database) in path for path in open_files(server.master))
        assert threads(server.master) == 1
        lines = [json.loads(line) for line in server.log_lines()]  # every line, gunicorn's own too
    assert any(r["logger"] == "gunicorn.error" and r["msg"].startswith("Listening at") for r in lines)
    assert any(r["logger"] == "gunicorn.error" and r["msg"].startswith("Booting worker") for r in lines)


def test_master_starts_no_retry_thread_when_the_database_is_down_and_metrics_say_why_they_fail(
    tmp_path: Path,
) -> None:
    """/proc refuses new files even to root: an unwritable metrics directory, for real."""
    down = f"postgresql://cds:pw@127.0.0.1:{_free_port()}/ketamine_cds"  # nothing listens there
    with serve(tmp_path, DATABASE_URL=down, PROMETHEUS_MULTIPROC_DIR="/proc/ketamine-cds-metrics") as server:
        workers = server.workers()
        deadline = time.monotonic() + 20
        while min(threads(w) for w in workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert min(threads(w) for w in workers) >= 2, "the workers' store retry threads did not start"
        assert threads(server.master) == 1
        assert status_of(f"{server.base}/readyz")[0] == 503
        status, body = status_of(f"{server.base}/metrics")  # not an empty 200: the scrape fails
        assert status == 503 and "PROMETHEUS_MULTIPROC_DIR=/proc/ketamine-cds-metrics is not writable" in body
        errors = [r["msg"] for r in map(json.loads, server.log_lines()) if r["level"] == "ERROR"]
    assert any("PROMETHEUS_MULTIPROC_DIR=/proc/ketamine-cds-metrics is not writable" in m for m in errors)


@pytest.mark.postgres
def test_master_holds_no_postgresql_connection(tmp_path: Path) -> None:
    url = os.environ.get("DATABASE_URL_TEST")
    if not url:
        pytest.skip('DATABASE_URL_TEST not set (eval "$(bash scripts/postgres-for-tests.sh)")')
    pg_port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with serve(tmp_path, DATABASE_URL=url) as server:
        workers = server.workers()
        assert status_of(f"{server.base}/readyz")[0] == 200
        assert any(pg_port in tcp_peers(w) for w in workers), "no worker connected to PostgreSQL"
        assert pg_port not in tcp_peers(server.master)
        assert threads(server.master) == 1
