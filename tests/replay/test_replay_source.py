"""Reading SOURCE: Bulk Data NDJSON (split, gzip), Bundles; bad input counted with its place, never raised."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.replay.source import (
    Problem,
    SourceError,
    discover,
    patient_key,
    read_resources,
    reference_id,
    with_canonical_reference,
)
from tests.replay.replay_support import blood_pressure, patient


def read_all(paths: list[str]) -> tuple[list[tuple[str, int, str]], list[Problem]]:
    problems: list[Problem] = []
    found = []
    for file in discover(paths):
        for position, resource in read_resources(file, problems.append):
            found.append((Path(file.label).name, position, str(resource.get("id"))))
    return found, problems


def lines(*resources: Any) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in resources).encode()


def test_a_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        discover([str(tmp_path / "nowhere")])


@pytest.mark.parametrize("content", [{}, {"notes.txt": b"hello"}, {"Patient.ndjson": b""}, {".hidden.ndjson": b"{}"}])
def test_a_folder_without_a_file_to_read_is_an_error(tmp_path: Path, content: dict[str, bytes]) -> None:
    for name, data in content.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(SourceError, match="no NDJSON"):
        discover([str(tmp_path)])


def test_an_empty_or_unknown_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "data.csv").write_text("a,b")
    with pytest.raises(SourceError, match="empty"):
        discover([str(tmp_path / "empty.json")])
    with pytest.raises(SourceError, match="not an NDJSON"):
        discover([str(tmp_path / "data.csv")])


def test_split_files_plain_and_gzip_are_read_in_name_order_with_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "Patient.2.ndjson.gz").write_bytes(gzip.compress(lines(patient("c"))))
    (tmp_path / "Patient.1.ndjson").write_bytes(lines(patient("a"), patient("b")))
    (tmp_path / "sub" / "Observation.ndjson").write_bytes(b"\n" + lines(blood_pressure("a", "o1", "2025-01-01", 1, 1)))
    (tmp_path / "README.md").write_text("not read")
    found, problems = read_all([str(tmp_path)])
    assert found == [("Patient.1.ndjson", 1, "a"), ("Patient.1.ndjson", 2, "b"), ("Patient.2.ndjson.gz", 1, "c"),
                     ("Observation.ndjson", 2, "o1")]  # fmt: skip
    assert problems == []


def test_compression_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_bytes(gzip.compress(lines(patient("a"))))
    (tmp_path / "Condition.ndjson.gz").write_bytes(lines({"resourceType": "Condition", "id": "c"}))
    found, problems = read_all([str(tmp_path)])
    assert sorted(i for _, _, i in found) == ["a", "c"] and problems == []


def test_unreadable_lines_are_counted_where_they_are_and_reading_goes_on(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + lines(patient("a")) + b"{not json\n" + b'["a list"]\n' + b'{"id": "x"}\n'
    data += b"\xff\xfe bytes\n" + lines(patient("b"))
    (tmp_path / "Patient.ndjson").write_bytes(data)
    found, problems = read_all([str(tmp_path)])
    assert [i for _, _, i in found] == ["a", "b"]
    assert [(p.kind, p.position) for p in problems] == [
        ("unreadable-line", 2), ("not-a-resource", 3), ("not-a-resource", 4), ("unreadable-line", 5),
    ]  # fmt: skip
    assert problems[0].file.endswith("Patient.ndjson")


def test_a_truncated_gzip_keeps_what_came_before_and_names_the_file(tmp_path: Path) -> None:
    whole = gzip.compress(lines(*(patient(f"p{i}") for i in range(2000))))
    (tmp_path / "Patient.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    found, problems = read_all([str(tmp_path)])
    assert 0 < len(found) < 2000
    assert [p.kind for p in problems] == ["truncated-gzip"]
    assert problems[0].position == len(found) + 1


def test_a_corrupt_gzip_is_counted(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    found, problems = read_all([str(tmp_path)])
    assert found == [] and [p.kind for p in problems] == ["truncated-gzip"]


def bundle(*resources: dict[str, Any], full_urls: bool = True) -> dict[str, Any]:
    entries = []
    for r in resources:
        entry: dict[str, Any] = {"resource": r}
        if full_urls:
            entry["fullUrl"] = f"urn:uuid:{r.pop('id')}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_a_bundle_resolves_urn_uuid_references(tmp_path: Path) -> None:
    pid = "1b7c1e4e-9f7e-4e0c-9a55-6f1e2d3c4b5a"
    obs = blood_pressure(pid, "2c7c1e4e-9f7e-4e0c-9a55-6f1e2d3c4b5a", "2025-01-01", 1, 1)
    obs["subject"]["reference"] = f"urn:uuid:{pid}"
    (tmp_path / "one.json").write_text(json.dumps(bundle(patient(pid), obs)))
    problems: list[Problem] = []
    (file,) = discover([str(tmp_path / "one.json")])
    resources = [r for _, r in read_resources(file, problems.append)]
    assert [r["id"] for r in resources] == [pid, "2c7c1e4e-9f7e-4e0c-9a55-6f1e2d3c4b5a"]
    assert resources[1]["subject"]["reference"] == f"Patient/{pid}"
    assert [patient_key(r) for r in resources] == [pid, pid]


def test_a_folder_of_bundles_with_a_bulk_manifest_a_single_resource_and_junk(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(bundle(patient("a"), full_urls=False)))
    inner = bundle(patient("b"), full_urls=False)
    nested = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(json.dumps(nested).encode()))
    (tmp_path / "c.json").write_text(json.dumps(patient("c")))
    (tmp_path / "manifest.json").write_text(json.dumps({"transactionTime": "2026-01-01T00:00:00Z", "output": []}))
    (tmp_path / "request.json").write_text(json.dumps({"hook": "order-sign"}))
    (tmp_path / "broken.json").write_text('{"resourceType": "Bundle", ')
    (tmp_path / "lines.json").write_bytes(lines(patient("d"), patient("e")))  # NDJSON under a .json name
    found, problems = read_all([str(tmp_path)])
    assert sorted(i for _, _, i in found) == ["a", "b", "c", "d", "e"]
    assert sorted((p.kind, Path(p.file).name) for p in problems) == [
        ("not-fhir", "request.json"), ("unreadable-file", "broken.json"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/123", "123"),
        ("https://ehr.example.org/fhir/Patient/123", "123"),
        ("Patient/123/_history/4", "123"),
        ("urn:uuid:0f1e", "0f1e"),
        ("Group/7", None),
        ("#contained", None),
        ("Patient/", None),
    ],
)
def test_patient_references_in_the_forms_exports_use(reference: str, expected: str | None) -> None:
    assert reference_id(reference) == expected


def test_the_patient_of_a_resource() -> None:
    assert patient_key(patient("p1")) == "p1"
    assert patient_key({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p2"}}) == "p2"
    assert patient_key({"resourceType": "Observation", "subject": {"display": "no reference"}}) is None
    assert patient_key({"resourceType": "Patient"}) is None


def test_a_patient_reference_is_made_canonical_in_a_copy() -> None:
    absolute = {"resourceType": "Observation", "subject": {"reference": "https://x/fhir/Patient/9", "display": "Y"}}
    canonical = with_canonical_reference(absolute, "9")
    assert canonical["subject"] == {"reference": "Patient/9", "display": "Y"}
    assert absolute["subject"]["reference"] == "https://x/fhir/Patient/9"
    already = {"resourceType": "Observation", "subject": {"reference": "Patient/9"}}
    assert with_canonical_reference(already, "9") is already
