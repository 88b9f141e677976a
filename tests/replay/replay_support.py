"""Shared pieces of the replay tests: small exports written on the spot, and the command run in-process."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.cli import main
from scripts.replay_export import patients

ORDER_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KETAMINE = {"coding": [{"system": ORDER_SYSTEM, "code": "6130", "display": "ketamine"}]}
SERTRALINE = {"coding": [{"system": ORDER_SYSTEM, "code": "36437", "display": "sertraline"}]}
# A day after every generated date (the generator draws order days up to 2025-12-31, later data 3 days after)
AFTER_EVERYTHING = "2026-02-01"
VITAL_SIGNS_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"


def generated(count: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    """``count`` patients from the fixture library (scripts/replay_export.py), each a list of resources."""
    return list(patients(count, seed))


def write_ndjson(folder: Path, people: Iterable[Sequence[Mapping[str, Any]]], *, compress: bool = False,
                 split: int = 1) -> Path:  # fmt: skip
    """A Bulk Data folder: one file per type and part (patients dealt round-robin over ``split`` parts)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for i, resources in enumerate(people):
        for resource in resources:
            name = f"{resource['resourceType']}.{i % split}.ndjson"
            lines.setdefault(name, []).append(json.dumps(resource))
    for name, content in lines.items():
        data = ("\n".join(content) + "\n").encode()
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def write_bundles(folder: Path, people: Iterable[Sequence[Mapping[str, Any]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, resources in enumerate(people):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        (folder / f"patient-{i:04d}.json").write_text(json.dumps(bundle))
    return folder


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``ketamine-cds replay ARGS`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main(["replay", *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return code, out, err


def replay_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = replay(capsys, *args, "--format", "json", "--workers", "1")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-04-02", **extra}


def ketamine_order(pid: str, oid: str, authored: str | None, **extra: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": KETAMINE,
        "subject": {"reference": f"Patient/{pid}"},
        "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]},
                               "doseAndRate": [{"doseQuantity": {"value": 35, "unit": "mg",
                                                                 "system": "http://unitsofmeasure.org",
                                                                 "code": "mg"}}]}],
        **extra,
    }  # fmt: skip
    if authored is not None:
        order["authoredOn"] = authored
    return order


def blood_pressure(pid: str, oid: str, when: str, systolic: int, diastolic: int) -> dict[str, Any]:
    def part(code: str, value: int) -> dict[str, Any]:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                                  "code": "mm[Hg]"}}  # fmt: skip

    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": VITAL_SIGNS_SYSTEM, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "component": [part("8480-6", systolic), part("8462-4", diastolic)],
    }


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def figures(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the rules said: every figure of a report but the input counts and the as-of bookkeeping."""
    return {k: v for k, v in doc.items() if k not in ("input", "as_of", "parameters")}
