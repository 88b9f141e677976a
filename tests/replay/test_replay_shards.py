"""Shards, merge and resume: the report of N shards merged, or of a resumed run, is exactly the single run's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.replay import index as index_module
from cds_service.replay import run as run_module
from cds_service.replay.shard import Shard, bucket
from cds_service.replay.worker import Worker
from tests.replay.replay_support import AFTER_EVERYTHING, generated, replay, replay_json, write_ndjson

COUNT = 36
MODES = {
    "actual-orders": ("--actual-orders",),
    "template": ("--order", "iv-ketamine-standard", "--now", AFTER_EVERYTHING),
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_ndjson(tmp_path_factory.mktemp("export"), generated(COUNT, seed=3), split=2)
    with (folder / "Condition.0.ndjson").open("a") as handle:
        handle.write("{broken\n")  # input problems must not be counted N times
    return folder


def test_every_patient_is_in_exactly_one_shard() -> None:
    keys = [f"patient-{i}" for i in range(2000)]
    for count in (1, 2, 3, 7):
        owners = [[s for s in range(count) if Shard(s, count).owns(k)] for k in keys]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(o == [s] for o in owners) for s in range(count)]
        assert min(sizes) > 0.7 * len(keys) / count  # an even spread
    assert bucket("patient-1", 5) == bucket("patient-1", 5)


@pytest.mark.parametrize("mode", list(MODES))
def test_shards_merged_give_exactly_the_single_run(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, mode: str
) -> None:
    args = MODES[mode]
    code, single, err = replay(capsys, export, *args, "--format", "json", "--workers", "1", "--with-ids",
                               tmp_path / "single.csv", "--work-dir", tmp_path / "w")  # fmt: skip
    assert code == 0, err
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):
        code, _out, err = replay(capsys, export, *args, "--shard", f"{i}/3", "--format", "json", "--workers", "1",
                                 "--output", shards / f"shard-{i}.json", "--with-ids", shards / f"shard-{i}.csv",
                                 "--work-dir", tmp_path / f"w{i}")  # fmt: skip
        assert code == 0, err
    parts = [json.loads((shards / f"shard-{i}.json").read_text()) for i in range(3)]
    assert sum(p["patients_in_export"] for p in parts) == COUNT
    assert all(p["input"] == parts[0]["input"] for p in parts)
    assert all(p["parameters"]["shard"] == f"{i}/3" for i, p in enumerate(parts))
    code, merged, err = replay(capsys, "merge", shards, "--format", "json", "--with-ids", tmp_path / "merged.csv")
    assert code == 0, err
    assert merged == single
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "single.csv").read_bytes()
    for fmt in ("text", "csv", "html"):
        code, one, err = replay(capsys, export, *args, "--format", fmt, "--workers", "1", "--work-dir", tmp_path / "w")
        assert code == 0, err
        code, many, err = replay(capsys, "merge", *sorted(shards.glob("*.json")), "--format", fmt)
        assert code == 0, err
        assert many == one, fmt


def shard_reports(capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"s{i}.json"
        code, _out, err = replay(capsys, export, "--actual-orders", "--shard", f"{i}/{count}", "--format", "json",
                                 "--workers", "1", "--output", path, "--work-dir", tmp_path / "w")  # fmt: skip
        assert code == 0, err
        paths.append(path)
    return paths


def test_merge_refuses_what_is_not_one_run(capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path) -> None:
    s0, s1 = shard_reports(capsys, export, tmp_path, 2)
    other = tmp_path / "other.json"
    replay(capsys, export, "--actual-orders", "--hook", "order-select", "--shard", "1/2", "--format", "json",
           "--workers", "1", "--output", other, "--work-dir", tmp_path / "w")  # fmt: skip
    text = tmp_path / "report.txt"
    text.write_text("not json")
    cases = [
        ((s0,), "shards missing: 1/2"),
        ((s0, s0), "is also in"),
        ((s0, other), "parameters differ: hook"),
        ((s0, tmp_path / "none.json"), "no such file"),
        ((s0, text), "neither a replay JSON report"),
        ((s0, s1, "--order", "x"), "merge takes reports"),
        ((s0, s1, "--with-ids", tmp_path / "ids.csv"), "no --with-ids list"),
    ]
    for args, message in cases:
        code, out, err = replay(capsys, "merge", *args)
        assert (code, out) == (2, ""), args
        assert message in err, (args, err)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(s1.read_text()), "format_version": 99}))
    code, _out, err = replay(capsys, "merge", s0, broken)
    assert code == 2 and "format 99" in err


def interrupt_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> list[int]:
    """Make the in-process worker stop the run (as Ctrl-C would) after ``batches`` batches; count patients."""
    replayed: list[int] = []
    real = Worker.replay

    def replay_then_stop(self: Any, keys: Any) -> Any:
        if len(replayed) >= batches:
            raise KeyboardInterrupt
        replayed.append(len(keys))
        return real(self, keys)

    monkeypatch.setattr(Worker, "replay", replay_then_stop)
    return replayed


def test_an_interrupted_run_resumes_where_it_stopped(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w0")
    work = tmp_path / "work"
    with monkeypatch.context() as patch:
        first = interrupt_after(patch, 1)
        code, out, err = replay(capsys, export, "--actual-orders", "--format", "json", "--workers", "1",
                                "--work-dir", work)  # fmt: skip
    assert (code, out) == (130, "") and "--resume" in err
    assert sum(first) == run_module._BATCH and (work / "results.sqlite").exists()
    second = interrupt_after(monkeypatch, 10**6)
    resumed = replay_json(capsys, export, "--actual-orders", "--work-dir", work, "--resume")
    assert resumed == whole
    assert sum(second) == COUNT - sum(first)  # the patients done before were not replayed again
    assert not work.exists()


def test_an_interrupted_index_resumes_at_the_first_file_not_finished(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped in the middle of a file (the first after the third that has six resources): the files before
    are not read again, that one is read again from its start (its half-written rows were rolled back), and
    the report is the whole run's."""
    whole = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w0")
    opened: list[str] = []
    real = index_module.read_resources

    def read_then_stop(file: Any, problem: Any) -> Any:
        opened.append(file.label)
        for count, item in enumerate(real(file, problem)):
            if len(opened) >= 4 and count == 5:
                raise KeyboardInterrupt
            yield item

    work = tmp_path / "work"
    with monkeypatch.context() as patch:
        patch.setattr(index_module, "read_resources", read_then_stop)
        code, _out, _err = replay(capsys, export, "--actual-orders", "--workers", "1", "--work-dir", work)
    assert code == 130 and len(opened) >= 4
    done_before = opened[:-1]
    opened.clear()
    monkeypatch.setattr(index_module, "read_resources", lambda file, problem: (opened.append(file.label),
                                                                              real(file, problem))[1])  # fmt: skip
    assert replay_json(capsys, export, "--actual-orders", "--work-dir", work, "--resume") == whole
    assert not set(opened) & set(done_before) and opened


def test_resume_refuses_another_runs_state_and_a_new_run_starts_over(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        assert replay(capsys, export, "--actual-orders", "--workers", "1", "--work-dir", work)[0] == 130
    code, _out, err = replay(capsys, export, "--actual-orders", "--hook", "order-select", "--resume",
                             "--work-dir", work)  # fmt: skip
    assert code == 2 and "holds another run (different hook)" in err
    code, _out, err = replay(capsys, export, "--actual-orders", "--workers", "1", "--work-dir", work)
    assert code == 0 and "starting over" in err
    nothing_to_resume = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "fresh", "--resume")
    assert nothing_to_resume["orders"] > 0


def test_a_template_run_resumes_at_its_own_instant(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--order", "iv-ketamine-standard", "--now", "2025-06-01")
    work = tmp_path / "work"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        assert replay(capsys, export, *args, "--workers", "1", "--work-dir", work)[0] == 130
    code, _out, err = replay(capsys, export, "--order", "iv-ketamine-standard", "--now", "2025-06-02", "--resume",
                             "--work-dir", work)  # fmt: skip
    assert code == 2 and "different now" in err
    resumed = replay_json(capsys, export, "--order", "iv-ketamine-standard", "--resume", "--work-dir", work)
    assert resumed["parameters"]["now"] == "2025-06-01T12:00:00Z"  # --now not repeated: the run's own instant


def test_two_runs_never_share_a_work_directory(export: Path, tmp_path: Path) -> None:
    from cds_service.replay.workdir import RunError, WorkDir

    first = WorkDir.open(tmp_path / "w", resume=False, err=None)
    with pytest.raises(RunError, match="in use by another replay"):
        WorkDir.open(tmp_path / "w", resume=False, err=None)
    first.release()
    WorkDir.open(tmp_path / "w", resume=False, err=None).release()
