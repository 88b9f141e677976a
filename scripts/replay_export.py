"""Generate a synthetic FHIR export for ``ketamine-cds replay`` from the fixture library (nothing is committed).

Patient ``i`` is fixture ``i mod 77`` (``fhir_fixtures/``) with new ids and its dates rolled to an anchor day
drawn between 2023-01-01 and 2025-12-31 (seeded: the same arguments give the same export). Each patient
also gets the fixture's own ketamine or esketamine order as a MedicationRequest authored on the anchor day
(status ``active``), so ``--actual-orders`` has orders to replay, and about one patient in three a blood
pressure of 188/118 three days *after* that order, which an as-of replay must never see.

    python scripts/replay_export.py OUT --patients 10000                    # Bulk Data NDJSON, 4 files per type
    python scripts/replay_export.py OUT --patients 500 --gzip --split 2     # gzip-compressed
    python scripts/replay_export.py OUT --patients 300 --layout bundles     # one collection Bundle per patient
    python scripts/replay_export.py OUT --patients 300 --with-problems      # plus unreadable input, counted

Used by ``scripts/measure_replay.py`` (throughput and memory) and the replay tests.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from cds_service.fhir.memory import resources_from_bundle  # noqa: E402
from cds_service.sandbox import roller  # noqa: E402
from cds_service.sandbox.fixtures import FixtureEntry, load_manifest  # noqa: E402
from cds_service.sandbox.requests import latest_weight_kg, load_template, materialize_order  # noqa: E402

_NS = uuid.UUID("9b0f8c3e-8f59-4f7e-bb0c-2a8f3e1d6c55")
FIRST_DAY = date(2023, 1, 1)
DAYS = (date(2025, 12, 31) - FIRST_DAY).days
LATER_BP_SHARE = 1 / 3
VITAL_SIGNS_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"


def patients(count: int, seed: int, fixtures_dir: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """The resources of each generated patient, in order."""
    manifest = load_manifest(fixtures_dir)
    entries = list(manifest.entries)
    texts = {e.name: json.dumps(manifest.bundle(e)) for e in entries}
    rng = random.Random(seed)
    for i in range(count):
        entry = entries[i % len(entries)]
        anchor = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
        text = texts[entry.name]
        for old in _uuids(text):
            text = text.replace(old, str(uuid.uuid5(_NS, f"{i}/{old}")))
        bundle = roller.roll(json.loads(text), anchor, anchor=manifest.anchor)
        resources = resources_from_bundle(bundle)
        patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        resources.append(_order(entry, patient_id, anchor, resources, manifest.root, i))
        if rng.random() < LATER_BP_SHARE:
            resources.append(_later_blood_pressure(patient_id, anchor + timedelta(days=3), i))
        yield resources


def _uuids(text: str) -> list[str]:
    found: list[str] = []
    start = text.find("urn:uuid:")
    while start != -1:
        value = text[start + 9 : start + 45]
        if value not in found:
            found.append(value)
        start = text.find("urn:uuid:", start + 45)
    return found


def _order(
    entry: FixtureEntry, patient_id: str, anchor: date, resources: list[dict[str, Any]], root: Path, i: int
) -> dict[str, Any]:
    template = load_template(entry.order_template, root)
    params = dict(entry.order_params)
    weight = latest_weight_kg(resources)
    if weight is None and "mg_per_kg" in (template.get("parameters") or {}) and not params:
        params = {"dose_mg": 35}
    order = materialize_order(
        template,
        patient_ref=f"Patient/{patient_id}",
        order_id=str(uuid.uuid5(_NS, f"{i}/order")),
        authored_on=f"{anchor.isoformat()}T11:55:00Z",
        params=params,
        weight_kg=weight,
    )
    order["status"] = "active"
    return order


def _later_blood_pressure(patient_id: str, day: date, i: int) -> dict[str, Any]:
    def component(code: str, value: int) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                              "code": "mm[Hg]"},
        }  # fmt: skip

    return {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(_NS, f"{i}/later-bp")),
        "status": "final",
        "category": [{"coding": [{"system": VITAL_SIGNS_SYSTEM, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"{day.isoformat()}T09:00:00Z",
        "component": [component("8480-6", 188), component("8462-4", 118)],
    }


def write_ndjson(out: Path, count: int, *, seed: int, split: int, compress: bool, problems: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    handles: dict[tuple[str, int], IO[str]] = {}
    suffix = ".ndjson.gz" if compress else ".ndjson"

    def handle(rtype: str, part: int) -> IO[str]:
        key = (rtype, part)
        if key not in handles:
            path = out / f"{rtype}.{part:03d}{suffix}"
            handles[key] = gzip.open(path, "wt", compresslevel=1) if compress else path.open("w")  # noqa: SIM115
        return handles[key]

    try:
        for i, resources in enumerate(patients(count, seed)):
            part = i * split // max(count, 1)
            for resource in resources:
                handle(resource["resourceType"], part).write(json.dumps(resource, separators=(",", ":")) + "\n")
        if problems:
            condition = handle("Condition", 0)
            condition.write("{this line is not JSON\n")
            condition.write(json.dumps({"resourceType": "Condition", "code": {"text": "no subject"}}) + "\n")
            condition.write(json.dumps({"no": "resourceType"}) + "\n")
    finally:
        for h in handles.values():
            h.close()
    outputs = [{"type": t, "url": f"file:{t}.{p:03d}{suffix}"} for t, p in sorted(handles)]
    manifest = {"transactionTime": "2026-01-01T00:00:00Z", "request": "$export", "requiresAccessToken": False,
                "output": outputs, "error": []}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if problems:
        (out / "Observation.truncated.ndjson.gz").write_bytes(
            gzip.compress(b'{"resourceType":"Observation","status":"final"}\n' * 50)[:-20]
        )


def write_bundles(out: Path, count: int, *, seed: int, compress: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, resources in enumerate(patients(count, seed)):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        data = json.dumps(bundle, separators=(",", ":")).encode()
        path = out / f"patient-{i:06d}.json"
        if compress:
            Path(f"{path}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            path.write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layout", choices=("ndjson", "bundles"), default="ndjson")
    parser.add_argument("--split", type=int, default=4, help="NDJSON files per resource type (default 4)")
    parser.add_argument("--gzip", action="store_true", help="gzip-compress every file")
    parser.add_argument("--with-problems", action="store_true", help="add unreadable lines and a truncated file")
    args = parser.parse_args(argv)
    if args.layout == "ndjson":
        write_ndjson(args.out, args.patients, seed=args.seed, split=max(1, args.split), compress=args.gzip,
                     problems=args.with_problems)  # fmt: skip
    else:
        write_bundles(args.out, args.patients, seed=args.seed, compress=args.gzip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
