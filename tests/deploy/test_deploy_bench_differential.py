"""The version-against-version comparison of the benchmark (benchmarks/differential.py): it answers requests
through the edge and pipeline, finds every kind of difference between two runs, and leaves the pipeline as it
found it."""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks import differential
from cds_service.hooks import gather
from tests.record import perturbed_requests


def _small_corpus(now: datetime, *, seeds: int = 2) -> Iterator[tuple[str, str, bytes]]:
    """Four fixture requests, one of them answered by the rules, and one malformed body."""
    yield from itertools.islice(perturbed_requests.fixture_requests(), 4)
    yield "malformed", "ketamine-order-sign", b'{"hook": "order-sign", "prefetch": {'


@pytest.fixture
def small_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perturbed_requests, "corpus", _small_corpus)


def test_dump_answers_every_request_and_restores_the_pipeline(
    small_corpus: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = gather.build_record
    assert differential.main(["dump", str(tmp_path / "a.pkl"), "--seeds", "0"]) == 0
    assert gather.build_record is saved
    found = pickle.loads((tmp_path / "a.pkl").read_bytes())
    assert len(found) == 5 and "5 requests answered" in capsys.readouterr().out
    assert found["malformed"][0] == 400 and found["malformed"][2] == ()
    answered = [answer for name, answer in found.items() if name != "malformed"]
    assert all(status == 200 and records for status, _cards, records in answered)
    assert any(json.loads(cards)["cards"] for _status, cards, _records in answered)
    assert "uuid" not in "".join(cards for _status, cards, _records in answered)  # new on every call


def test_two_runs_of_one_version_agree(small_corpus: None, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    for name in ("a.pkl", "b.pkl"):
        assert differential.main(["dump", str(tmp_path / name), "--seeds", "0"]) == 0
    assert differential.main(["compare", str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl")]) == 0
    assert "5 requests compared, 0 differ" in capsys.readouterr().out


def test_compare_names_each_kind_of_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = {"same": (200, "[]", ("r",)), "status": (200, "[]", ()), "cards": (200, "[1]", ()),
             "records": (200, "[]", ("r1",)), "only-first": (200, "[]", ())}  # fmt: skip
    second = {"same": (200, "[]", ("r",)), "status": (400, "[]", ()), "cards": (200, "[2]", ()),
              "records": (200, "[]", ("r2",)), "only-second": (200, "[]", ())}  # fmt: skip
    assert differential.compare(first, second) == [
        "only in one run: only-first",
        "only in one run: only-second",
        "cards: cards or issues differ",
        "records: records differ",
        "status: status 200 != 400",
    ]
    assert differential.compare(first, dict(first)) == []
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(first))
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(second))
    assert differential.main(["compare", str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl")]) == 1
    assert "6 requests compared, 5 differ" in capsys.readouterr().out
