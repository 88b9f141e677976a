"""Profile one workload in-process with pyinstrument: ``python -m benchmarks.profile 3-ketamine-heavy``.

Builds the real app (auth off, SQLite feedback store in a temporary directory), sends the workload's
request a few times to warm up, then profiles ``--calls`` calls and prints the call tree. Workload 4 is
not supported here (it needs the FHIR stub: use ``benchmarks.run``). Needs ``pip install pyinstrument``
(not a project dependency).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import tempfile
from pathlib import Path

from benchmarks.workloads import build_workloads
from cds_service.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", help="workload name or a unique part of it, e.g. 'typical'")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval (s)")
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: .venv/bin/pip install pyinstrument", file=sys.stderr)
        return 2
    from cds_service.web.app import create_app

    matches = [w for w in build_workloads() if args.workload in w.name and not w.needs_fhir_stub]
    if len(matches) != 1:
        print(f"choose one of: {[w.name for w in build_workloads() if not w.needs_fhir_stub]}", file=sys.stderr)
        return 2
    workload = matches[0]
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(auth_enabled=False, database_url=f"sqlite:///{Path(tmp) / 'fb.sqlite3'}"))
        gc.freeze()  # as each gunicorn worker does (cds_service.web.serve.GunicornApplication.load)
        client = app.test_client()
        url = f"/cds-services/{workload.service_id}"
        raw = json.dumps(workload.body).encode()  # serialised once: the profile shows only the service
        for _ in range(3):
            client.post(url, data=raw, content_type="application/json")
        profiler = Profiler(interval=args.interval)
        profiler.start()
        for _ in range(args.calls):
            status = client.post(url, data=raw, content_type="application/json").status_code
        profiler.stop()
    print(f"{workload.name}: {args.calls} calls, last status {status}")
    print(profiler.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
