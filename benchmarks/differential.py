"""Compare two versions of the service on the record corpus: same status, same cards, same patient records.

A speed change must not change an answer. ``tests/record/test_partial.py`` checks what one version can check
against itself (decoding partly or wholly); this tool checks a branch against an earlier commit, on every
request of ``tests/record/perturbed_requests.py`` (the fixture requests of both hooks, the benchmark workloads,
seeded perturbations), through the edge and pipeline of whichever ``cds_service`` comes first on the path:

    git worktree add /tmp/base main
    PYTHONHASHSEED=0 PYTHONPATH=/tmp/base .venv/bin/python benchmarks/differential.py dump /tmp/base.pkl
    PYTHONHASHSEED=0 .venv/bin/python benchmarks/differential.py dump /tmp/branch.pkl
    .venv/bin/python benchmarks/differential.py compare /tmp/base.pkl /tmp/branch.pkl

(``PYTHONHASHSEED`` keeps the order of sets in the records' text the same in both runs; ``--seeds`` sets the
perturbations per request, 5 by default.) Records are compared as their ``repr``; the clock is fixed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.fromisoformat("2026-11-23T12:00:00+00:00")


def answers(seeds: int) -> Iterator[tuple[str, tuple[int, str, tuple[str, ...]]]]:
    """(request name, (status, cards or issues as JSON, records as text)) of every request of the corpus."""
    from cds_service.config import Settings  # the cds_service under test: whichever comes first on the path
    from cds_service.hooks import gather, pipeline
    from cds_service.hooks.body import decode_hook_body
    from cds_service.hooks.errors import HookError
    from cds_service.knowledge.loader import load_knowledge

    sys.path.insert(0, str(ROOT))  # the corpus and the workloads of this checkout, even beside another `tests`
    from tests.record.perturbed_requests import corpus, without_uuids

    kb = load_knowledge()
    settings = Settings(auth_enabled=False, fhir_server_allowlist=(), database_url="sqlite://")
    records: list[Any] = []
    build = gather.build_record

    def recording(*args: Any, **kwargs: Any) -> Any:
        records.append(build(*args, **kwargs))
        return records[-1]

    gather.build_record = recording  # type: ignore[assignment]
    try:
        for name, service_id, raw in corpus(NOW, seeds=seeds):
            records.clear()
            try:
                body = decode_hook_body(raw, settings.max_json_depth)
                cards = pipeline.handle_hook_call(service_id, body, kb=kb, settings=settings, now=NOW,
                                                  base_url="https://cds.example.org")  # fmt: skip
                outcome = (200, json.dumps(without_uuids(cards), sort_keys=True))
            except HookError as exc:
                outcome = (exc.status, repr([(i.code, i.diagnostics, i.expression) for i in exc.issues]))
            yield name, (*outcome, tuple(repr(r) for r in records))
    finally:  # the pipeline as it was, for whatever runs next in this process
        gather.build_record = build


def compare(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """What differs, request by request (empty when nothing does)."""
    problems = [f"only in one run: {name}" for name in sorted(set(first) ^ set(second))]
    for name in sorted(set(first) & set(second)):
        (status_a, answer_a, records_a), (status_b, answer_b, records_b) = first[name], second[name]
        if status_a != status_b:
            problems.append(f"{name}: status {status_a} != {status_b}")
        elif answer_a != answer_b:
            problems.append(f"{name}: cards or issues differ")
        elif records_a != records_b:
            problems.append(f"{name}: records differ")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="answer every request of the corpus and write the answers to FILE")
    dump.add_argument("file", type=Path)
    dump.add_argument("--seeds", type=int, default=5)
    both = sub.add_parser("compare", help="compare two dumps")
    both.add_argument("first", type=Path)
    both.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        import cds_service

        found = dict(answers(args.seeds))
        args.file.write_bytes(pickle.dumps(found))
        print(f"{len(found)} requests answered by {Path(cds_service.__file__).parent}")
        return 0
    first, second = pickle.loads(args.first.read_bytes()), pickle.loads(args.second.read_bytes())
    problems = compare(first, second)
    print(f"{len(set(first) | set(second))} requests compared, {len(problems)} differ")
    for problem in problems[:50]:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
