"""``ketamine-cds replay``: both modes on every kind of SOURCE, as-of replay, privacy, formats, workers, errors."""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cds_service.fhir.asof import known_from
from cds_service.sandbox.fixtures import load_manifest
from tests.replay.replay_support import (
    AFTER_EVERYTHING,
    blood_pressure,
    figures,
    generated,
    ketamine_order,
    patient,
    replay,
    replay_json,
    write_bundles,
    write_ndjson,
)

COUNT = 30


@pytest.fixture(scope="module")
def people() -> list[list[dict[str, Any]]]:
    return generated(COUNT)


@pytest.fixture(scope="module")
def export(people: list[list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ndjson(tmp_path_factory.mktemp("plain"), people, split=3)


def ketamine_patients(count: int) -> int:
    """Generated patients whose order (the fixture's own) is for ketamine or esketamine."""
    entries = load_manifest().entries
    return sum("ketamine" in entries[i % len(entries)].order_template for i in range(count))


def test_actual_orders_on_plain_gzip_bundle_folders_and_one_bundle_agree(
    capsys: pytest.CaptureFixture[str], people: list[list[dict[str, Any]]], export: Path, tmp_path: Path
) -> None:
    plain = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w1")
    gz = replay_json(capsys, write_ndjson(tmp_path / "gz", people, compress=True, split=2), "--actual-orders",
                     "--work-dir", tmp_path / "w2")  # fmt: skip
    bundles = replay_json(capsys, write_bundles(tmp_path / "b", people), "--actual-orders", "--work-dir",
                          tmp_path / "w3")  # fmt: skip
    assert figures(plain) == figures(gz) == figures(bundles)
    assert plain["as_of"] == gz["as_of"] == bundles["as_of"]
    assert plain["patients_in_export"] == COUNT
    assert plain["orders"] == ketamine_patients(COUNT) > 0
    assert plain["patients"] + sum(plain["patients_left_out"].values()) == COUNT
    assert plain["cards"] == sum(int(n) * c for n, c in plain["cards_per_order"]["distribution"].items())
    assert sum(plain["cards_per_order"]["distribution"].values()) == plain["orders"]
    assert plain["input"]["problems"] == {} and plain["problems"] == {}
    write_bundles(tmp_path / "one", people[:1])
    one = tmp_path / "one" / "patient-0000.json"
    single = replay_json(capsys, one, "--actual-orders", "--work-dir", tmp_path / "w4")
    assert single["patients_in_export"] == 1 and single["input"]["files"] == 1


def test_template_orders_for_a_cohort(capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path) -> None:
    everyone = replay_json(capsys, export, "--order", "iv-ketamine-standard", "--cohort", "all", "--now",
                           AFTER_EVERYTHING, "--work-dir", tmp_path / "w1")  # fmt: skip
    assert everyone["patients"] == everyone["orders"] == COUNT
    assert everyone["parameters"]["now"] == f"{AFTER_EVERYTHING}T12:00:00Z"
    assert everyone["parameters"]["order_template"] == "iv-ketamine-standard"
    depressed = replay_json(capsys, export, "--order", "iv-ketamine-standard", "--now", AFTER_EVERYTHING,
                            "--work-dir", tmp_path / "w2")  # fmt: skip
    assert depressed["parameters"]["cohort"] == "depression"
    assert 0 < depressed["patients"] < COUNT
    assert depressed["patients"] + depressed["patients_left_out"]["not-in-cohort"] == COUNT
    assert set(depressed["topics"]) <= set(everyone["topics"])


def test_a_template_file_can_be_given_by_path(capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path) -> None:
    template = json.loads((load_manifest().root / "orders" / "esketamine-56mg.json").read_text())
    path = tmp_path / "site-template.json"
    path.write_text(json.dumps({**template, "name": "site-esketamine"}))
    doc = replay_json(capsys, export, "--order", path, "--cohort", "all", "--now", AFTER_EVERYTHING,
                      "--work-dir", tmp_path / "w")  # fmt: skip
    assert doc["parameters"]["order_template"] == "site-esketamine" and doc["orders"] == COUNT


def order_instant(resources: list[dict[str, Any]]) -> Any:
    """The instant of the patient's (one) generated order."""
    (when,) = {known_from(r) for r in resources if r["resourceType"] == "MedicationRequest" and
               r.get("status") == "active" and "ketamine" in json.dumps(r).lower()} or {None}  # fmt: skip
    return when


def split_at_order(people: list[list[dict[str, Any]]]) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """(each patient without what is dated after their order, each with that moved to an hour before it)."""
    trimmed, moved = [], []
    for resources in people:
        at = order_instant(resources)
        later = [r for r in resources if at is not None and (known_from(r) or at) > at]
        trimmed.append([r for r in resources if r not in later])
        earlier = (at - timedelta(hours=1)).isoformat() if at is not None else None
        moved.append([r if r not in later else {**r, "effectiveDateTime": earlier} for r in resources])
    return trimmed, moved


def test_a_resource_dated_after_the_order_never_influences_it(
    capsys: pytest.CaptureFixture[str], people: list[list[dict[str, Any]]], export: Path, tmp_path: Path
) -> None:
    trimmed, moved = split_at_order(people)
    with_later = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w1")
    without = replay_json(capsys, write_ndjson(tmp_path / "trimmed", trimmed), "--actual-orders", "--work-dir",
                          tmp_path / "w2")  # fmt: skip
    assert with_later["as_of"]["resources_left_out"] > 0 and without["as_of"]["resources_left_out"] == 0
    assert figures(with_later) == figures(without)
    # and the comparison can fail: the same readings dated an hour before the orders do change what is said
    before = replay_json(capsys, write_ndjson(tmp_path / "moved", moved), "--actual-orders", "--work-dir",
                         tmp_path / "w3")  # fmt: skip
    assert before["as_of"]["resources_left_out"] == 0
    assert figures(before) != figures(with_later)


def test_each_order_is_replayed_at_its_own_date_with_earlier_orders_as_history(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    resources = [
        patient("p1"),
        ketamine_order("p1", "first", "2025-03-01T10:00:00Z"),
        blood_pressure("p1", "bp", "2025-03-05T09:00:00Z", 191, 121),
        ketamine_order("p1", "second", "2025-03-08T10:00:00Z"),
        ketamine_order("p1", "undated", None),
        ketamine_order("p1", "void", "2025-03-09T10:00:00Z", status="entered-in-error"),
    ]
    export = write_ndjson(tmp_path / "e", [resources])
    code, out, err = replay(capsys, export, "--actual-orders", "--format", "json", "--with-ids", tmp_path / "ids.csv",
                            "--workers", "1", "--work-dir", tmp_path / "w")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["orders"] == 2
    # "first" without the BP, "second" and "void"; "second" without "void" (entered in error, still in the record)
    assert doc["as_of"] == {"orders_with_data_left_out": 2, "resources_left_out": 4}
    assert doc["problems"]["order-without-date"]["count"] == 1
    rows = list(csv.DictReader((tmp_path / "ids.csv").open()))
    assert [(r["order_id"], r["order_date"]) for r in rows] == [
        ("first", "2025-03-01T10:00:00Z"), ("second", "2025-03-08T10:00:00Z"),
    ]  # fmt: skip
    first, second = rows
    assert first["topics"] != second["topics"]  # the blood pressure between them is seen by the second only


def test_bad_input_is_counted_and_named_never_fatal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    export = write_ndjson(tmp_path / "e", [[patient("p1"), ketamine_order("p1", "k1", "2025-03-01T10:00:00Z")]])
    with (export / "Patient.0.ndjson").open("a") as handle:
        handle.write("{truncated line\n")
    (export / "Observation.ndjson").write_text(
        json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "no subject"}}) + "\n"
        + json.dumps(blood_pressure("ghost", "o2", "2025-01-01", 120, 80)) + "\n"
    )  # fmt: skip
    (export / "MedicationStatement.ndjson").write_text(json.dumps({
        "resourceType": "MedicationStatement", "id": "ms", "status": "active", "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/not-there"}, "effectiveDateTime": "2024-01-01",
    }) + "\n")  # fmt: skip
    (export / "Condition.ndjson.gz").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")
    code, out, err = replay(capsys, export, "--actual-orders", "--workers", "1", "--work-dir", tmp_path / "w")
    assert code == 0, err
    for kind in ("unreadable-line", "no-patient", "patient-not-in-export", "medication-not-in-export",
                 "truncated-gzip"):  # fmt: skip
        assert kind in out
    assert "Patient.0.ndjson line 2" in out and "Observation.ndjson line 1" in out
    doc = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w")
    assert doc["orders"] == 1 and doc["patients_left_out"] == {"no-patient-resource": 1}
    assert doc["input"]["problems"]["unreadable-line"] == {"count": 1, "examples": [
        {"file": str(export / "Patient.0.ndjson"), "line": 2}]}  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: p, "no NDJSON"),
        (lambda p: (p / "x.ndjson").write_text("junk\n") and p, "holds no FHIR resource"),
    ],
)
def test_a_missing_or_empty_source_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any, message: str
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    code, out, err = replay(capsys, make(source), "--actual-orders", "--work-dir", tmp_path / "w")
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --actual-orders and --order"),
        (("--actual-orders", "--order", "iv-ketamine-standard"), "exactly one of"),
        (("--actual-orders", "--now", "2025-01-01"), "--now applies to --order"),
        (("--order", "no-such-template"), "no order template"),
        (("--order", "iv-ketamine-standard", "--now", "yesterday"), "not a date"),
        (("--actual-orders", "--shard", "3/3"), "outside 0..2"),
        (("--actual-orders", "--shard", "one/3"), "expected I/N"),
        (("--actual-orders", "--workers", "0"), "at least 1"),
        (("--actual-orders", "--output", "/nonexistent/dir/report.txt"), "cannot write there"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, _out, err = replay(capsys, export, *args, "--work-dir", tmp_path / "w")
    assert code == 2 and message in err


def test_no_output_names_a_patient_unless_asked(
    capsys: pytest.CaptureFixture[str], people: list[list[dict[str, Any]]], export: Path, tmp_path: Path
) -> None:
    ids = {r["id"] for resources in people for r in resources if r["resourceType"] in ("Patient", "MedicationRequest")}
    names = {n["family"] for resources in people for r in resources if r["resourceType"] == "Patient"
             for n in r.get("name", ())}  # fmt: skip
    for fmt in ("text", "json", "csv", "html"):
        code, out, err = replay(capsys, export, "--actual-orders", "--format", fmt, "--workers", "1",
                                "--work-dir", tmp_path / "w")  # fmt: skip
        assert code == 0, err
        assert not [i for i in ids | names if i in out], fmt
    listed = tmp_path / "ids.csv"
    code, _out, err = replay(capsys, export, "--actual-orders", "--with-ids", listed, "--workers", "1",
                             "--work-dir", tmp_path / "w")  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    rows = list(csv.DictReader(listed.open()))
    assert len(rows) == ketamine_patients(COUNT)
    assert {r["patient_id"] for r in rows} <= ids
    assert [r["patient_id"] for r in rows] == sorted(r["patient_id"] for r in rows)


def test_the_work_directory_is_private_and_removed_when_done(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    replay_json(capsys, export, "--actual-orders", "--work-dir", work, "--keep-work")
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert (work / "index.sqlite").exists()
    replay_json(capsys, export, "--actual-orders", "--work-dir", work)
    assert not work.exists()


def test_html_is_one_self_contained_page_and_csv_one_table(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path
) -> None:
    code, page, err = replay(capsys, export, "--actual-orders", "--format", "html", "--workers", "1",
                             "--work-dir", tmp_path / "w")  # fmt: skip
    assert code == 0, err
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3
    assert "<script" not in page and " src=" not in page and "href=" not in page
    code, table, err = replay(capsys, export, "--actual-orders", "--format", "csv", "--workers", "1",
                              "--work-dir", tmp_path / "w")  # fmt: skip
    rows = list(csv.reader(io.StringIO(table)))
    assert rows[0] == ["section", "key", "indicator", "value"] and all(len(r) == 4 for r in rows)
    assert ["total", "orders", "", str(ketamine_patients(COUNT))] in rows


def test_deceased_patients_get_no_hypothetical_order(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    people = [[patient("alive")], [patient("gone", deceasedDateTime="2025-01-01")],
              [patient("was", deceasedBoolean=True)]]  # fmt: skip
    doc = replay_json(capsys, write_ndjson(tmp_path / "e", people), "--order", "iv-ketamine-standard", "--cohort",
                      "all", "--now", "2025-06-01", "--work-dir", tmp_path / "w")  # fmt: skip
    assert doc["patients"] == 1 and doc["patients_left_out"] == {"deceased": 2}
    early = replay_json(capsys, tmp_path / "e", "--order", "iv-ketamine-standard", "--cohort", "all", "--now",
                        "2024-12-31", "--work-dir", tmp_path / "w")  # fmt: skip
    assert early["patients"] == 2


def test_a_weight_based_template_without_a_weight_is_written_per_kg(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = replay_json(capsys, write_ndjson(tmp_path / "e", [[patient("p")]]), "--order", "iv-ketamine-standard",
                      "--cohort", "all", "--now", "2025-06-01", "--work-dir", tmp_path / "w")  # fmt: skip
    assert doc["notes"] == {"dose-per-kg-no-weight": 1} and doc["orders"] == 1


def test_all_cores_give_the_same_report_as_one(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path
) -> None:
    one = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w1")
    code, out, err = replay(capsys, export, "--actual-orders", "--format", "json", "--workers", "2",
                            "--work-dir", tmp_path / "w2")  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == one
    assert "replay: " in err and "patients/s" in err  # the closing summary


def test_progress_is_drawn_on_a_terminal() -> None:
    from cds_service.replay.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Progress(screen, enabled=True, label="replay: patients", total=10, unit="patients")
    bar.advance(5)
    bar.advance(5)
    bar.close()
    assert "\r" in screen.getvalue() and "[" in screen.getvalue() and "10/10" in screen.getvalue()
    pipe = io.StringIO()
    quiet = Progress(pipe, enabled=True, label="replay: patients", total=10, unit="patients")
    quiet.advance(5)
    assert pipe.getvalue() == ""  # not a terminal: a line a minute, not a redraw
    quiet.close()
    assert pipe.getvalue().startswith("replay: patients: 5/10 patients")


def test_an_order_with_a_date_only_authored_on_is_replayed_at_midnight(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    resources = [patient("p"), ketamine_order("p", "k", "2025-03-01"),
                 blood_pressure("p", "same-day-later", "2025-03-01T09:00:00Z", 190, 120)]  # fmt: skip
    export = write_ndjson(tmp_path / "e", [resources])
    doc = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w")
    assert doc["orders"] == 1 and doc["as_of"]["resources_left_out"] == 1  # 09:00 that day is after midnight


def test_an_order_the_service_fails_on_is_counted_and_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds_service.replay import evaluate as seam

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a rule that trips on odd data")

    monkeypatch.setattr(seam.pipeline, "decide", broken)  # a failure inside the pipeline's decide stage
    export = write_ndjson(tmp_path / "e", [[patient("p"), ketamine_order("p", "k", "2025-03-01T10:00:00Z")]])
    doc = replay_json(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w")
    assert doc["orders"] == 1 and doc["orders_refused"] == {"500": 1} and doc["cards"] == 0
    assert doc["problems"]["evaluation-error"] == {"count": 1, "examples": [
        {"file": str(export / "MedicationRequest.0.ndjson"), "line": 1}]}  # fmt: skip
    assert doc["service_log"] == {"cds_service.replay.evaluate ERROR": 1}
    template = replay_json(capsys, export, "--order", "iv-ketamine-standard", "--cohort", "all", "--now",
                           "2025-06-01", "--work-dir", tmp_path / "w")  # fmt: skip
    assert template["problems"]["evaluation-error"]["examples"] == [{"file": str(export / "Patient.0.ndjson"),
                                                                     "line": 1}]  # fmt: skip


def test_a_malformed_service_setting_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETAMINE_CDS_LOCAL_TIMEZONE", "Nowhere/Special")
    code, _out, err = replay(capsys, export, "--actual-orders", "--work-dir", tmp_path / "w")
    assert code == 2 and "KETAMINE_CDS_LOCAL_TIMEZONE" in err and "Traceback" not in err


def test_service_warnings_are_counted_and_other_threads_logs_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading

    from cds_service.replay.worker import LogCounter

    counter = LogCounter()
    service_log = logging.getLogger("cds_service.cards.render")
    with caplog.at_level(logging.INFO), counter.capturing():
        service_log.warning("a summary was shortened")
        service_log.info("not a warning")
        other = threading.Thread(target=lambda: logging.getLogger("cds_service.feedback").warning("store away"))
        other.start()
        other.join()
    assert counter.take() == (("cds_service.cards.render WARNING", 1),)
    assert [r.getMessage() for r in caplog.records] == ["store away"]


def test_a_resource_without_an_id_is_used_and_counted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    nameless = blood_pressure("p", "x", "2025-02-27T09:00:00Z", 191, 121)
    del nameless["id"]
    with_id = {**nameless, "id": "bp"}
    orders = [patient("p"), ketamine_order("p", "k", "2025-03-01T10:00:00Z")]
    one = replay_json(capsys, write_ndjson(tmp_path / "a", [[*orders, nameless]]), "--actual-orders",
                      "--work-dir", tmp_path / "w")  # fmt: skip
    other = replay_json(capsys, write_ndjson(tmp_path / "b", [[*orders, with_id]]), "--actual-orders",
                        "--work-dir", tmp_path / "w")  # fmt: skip
    assert one["orders_refused"] == {} and one["topics"] == other["topics"]
    assert one["input"]["problems"]["no-id"]["count"] == 1
