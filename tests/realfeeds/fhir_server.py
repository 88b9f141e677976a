"""A real FHIR R4 server for the tests of the no-prefetch path: sekmet-fhir (FastAPI + SQLite, a dev dependency).

Unlike a mock, it honours search parameters (``patient``, ``code``, ``category``, ``_sort``, ``_count``,
``_include``) the way a hospital's server does, so the service's own queries are tested against what a
server returns for them. It stores what it is sent without validating it (``validation.inbound: off``), as
an EHR's server holds real-feed data that breaks FHIR's letter; its simulator (which would act on orders)
is off. One server per test session, on a free loopback port, in a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from cds_service.sandbox.cli import load_bundle

_LOADED = re.compile(r"^(?P<name>[\w.-]+): Patient/(?P<id>[^\s]+)\s", re.MULTILINE)
START_TIMEOUT_S = 60.0


class FhirServer:
    """A running server: its base URL, and loading through the service's own ``fixtures load``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def load_library(self, now: datetime, *names: str) -> dict[str, str]:
        """``ketamine-cds fixtures load`` (the command users run) into this server: fixture name -> Patient id."""
        command = [_bin("ketamine-cds"), "fixtures", "load", "--fhir-server", self.base_url, "--now", now.isoformat()]
        for name in names:
            command += ["--patient", name]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"fixtures load failed ({done.returncode}): {done.stderr[-2000:]}")
        return {m.group("name"): m.group("id") for m in _LOADED.finditer(done.stdout)}

    def load_bundle(self, bundle: Mapping[str, Any]) -> list[str]:
        """POST one transaction Bundle (the loader ``fixtures load`` uses); the locations the server assigned."""
        return load_bundle(self.base_url, bundle, timeout=60.0)


def _bin(name: str) -> str:
    """A console script of this virtual environment (the tests run from it: ``make test``)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise RuntimeError(f"{name} is not installed: run `make install` (it is a dev dependency)")
        return found
    return str(path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_sekmet(workdir: Path) -> Iterator[FhirServer]:
    """Start sekmet-fhir on loopback, wait until it answers ``/metadata``, stop it afterwards."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = workdir / "sekmet.yaml"
    config.write_text(
        json.dumps(
            {
                "base_url": base,
                "host": "127.0.0.1",
                "port": port,
                "data_dir": str(workdir / "data"),
                "validation": {"inbound": "off"},
                "simulator": {"enabled": False},
                "log_inbound": False,
            }
        )
    )  # JSON is YAML
    env = {**os.environ, "SEKMET_CONFIG": str(config)}
    log = (workdir / "sekmet.log").open("w")
    process = subprocess.Popen(
        [_bin("sekmet"), "serve", "--config", str(config)], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sekmet exited with {process.returncode}: {(workdir / 'sekmet.log').read_text()}")
            try:
                if requests.get(f"{base}/metadata", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sekmet did not answer within {START_TIMEOUT_S:g} s")
            time.sleep(0.2)
        yield FhirServer(base)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
