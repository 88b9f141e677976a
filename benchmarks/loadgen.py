"""Load generator: a separate process that replays one recorded request over keep-alive connections.

Closed loop: ``--concurrency`` threads, each with its own ``http.client`` keep-alive connection, send the
same body back to back after a warm-up, until ``--requests`` are done or ``--duration`` seconds pass.
Prints one JSON object: latency percentiles (ms), throughput (requests/s), errors, and the raw latencies
(so that a caller can merge several runs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


class _Client:
    def __init__(self, host: str, port: int, path: str, body: bytes) -> None:
        self.host, self.port, self.path, self.body = host, port, path, body
        self.conn = http.client.HTTPConnection(host, port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def call(self) -> tuple[int, bytes]:
        try:
            self.conn.request("POST", self.path, body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            return 0, b""


def run(url: str, body: bytes, *, concurrency: int, requests: int, duration: float, warmup: int) -> dict[str, Any]:
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    clients = [_Client(host, port, parsed.path, body) for _ in range(concurrency)]
    statuses: dict[int, int] = {}
    sample: bytes = b""
    for _ in range(warmup):
        _status, sample = clients[0].call()
    latencies: list[float] = []
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.perf_counter() + duration

    def worker(client: _Client) -> None:
        while True:
            with lock:
                if remaining[0] <= 0 or time.perf_counter() > deadline:
                    return
                remaining[0] -= 1
            start = time.perf_counter()
            status, _ = client.call()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    try:
        cards = len(json.loads(sample).get("cards", [])) if sample else None
    except ValueError:
        cards = None
    return {
        "requests": len(ms),
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else 0.0,
        "throughput_rps": round(len(ms) / wall, 1) if wall > 0 else 0.0,
        "cards_in_sample": cards,
        "wall_s": round(wall, 4),
        "latencies_ms": [round(x, 3) for x in ms],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, type=Path, help="file with the request JSON")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--duration", type=float, default=20.0, help="stop after this many seconds")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    result = run(args.url, args.body.read_bytes(), concurrency=args.concurrency, requests=args.requests,
                 duration=args.duration, warmup=args.warmup)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
