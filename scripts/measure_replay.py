"""Measure ``ketamine-cds replay``: throughput (patients per second, and per core) and memory as the export grows.

Generates Bulk Data exports from the fixture library (``scripts/replay_export.py``) in a scratch folder, runs
the command on each as a user would (a subprocess, all cores) and records wall time, the CPU time of the whole
process tree, and the peak resident memory of the parent process and of the largest worker (sampled from
/proc every 0.1 s). Linux only. Results: docs/replay.md, "Speed and memory".

    .venv/bin/python scripts/measure_replay.py                         # 2,500 ... 20,000 patients
    .venv/bin/python scripts/measure_replay.py --sizes 10000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.replay_export import write_ndjson  # noqa: E402

MODES = {
    "order, cohort all": ["--order", "iv-ketamine-standard", "--cohort", "all", "--now", "2026-02-01"],
    "order, cohort depression": ["--order", "iv-ketamine-standard", "--cohort", "depression", "--now", "2026-02-01"],
    "actual orders": ["--actual-orders"],
}


@dataclass
class Measurement:
    mode: str
    patients: int
    wall: float
    cpu: float
    parent_mib: float
    worker_mib: float

    def row(self) -> str:
        return (f"| {self.mode} | {self.patients:,} | {self.wall:.1f} | {self.patients / self.wall:,.0f} | "
                f"{self.cpu / self.patients * 1000:.2f} | {self.patients / self.cpu:,.0f} | "
                f"{self.parent_mib:.0f} | {self.worker_mib:.0f} |")  # fmt: skip


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(c) for c in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def measure(export: Path, mode: str, patients: int, workers: int, scratch: Path) -> Measurement:
    command = [sys.executable, "-m", "cds_service", "replay", str(export), *MODES[mode], "--workers", str(workers),
               "--format", "json", "--output", str(scratch / "report.json"), "--work-dir", str(scratch / "work"),
               "--quiet"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO)
    peaks = {"parent": 0.0, "worker": 0.0}

    def sample() -> None:
        while proc.poll() is None:
            peaks["parent"] = max(peaks["parent"], rss_mib(proc.pid))
            for child in children(proc.pid):
                peaks["worker"] = max(peaks["worker"], rss_mib(child))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if proc.wait() != 0:
        raise SystemExit(f"replay failed on {export} ({mode})")
    wall = time.monotonic() - started
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(mode, patients, wall, cpu, peaks["parent"], peaks["worker"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10_000, 20_000])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args(argv)
    print(f"{len(os.sched_getaffinity(0))} CPUs, {args.workers} workers; load average before: {os.getloadavg()}")
    print("| mode | patients | wall s | patients/s | CPU ms/patient | patients/s per core | parent MiB | worker MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="replay-measure-") as tmp:
        scratch = Path(tmp)
        for size in args.sizes:
            export = scratch / f"export-{size}"
            write_ndjson(export, size, seed=1, split=4, compress=True, problems=False)
            for mode in args.modes:
                print(measure(export, mode, size, args.workers, scratch).row(), flush=True)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
