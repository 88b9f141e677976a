"""Hook requests for the record differential tests: every fixture request, the benchmark workloads, and seeded
perturbations of them in the shapes real feeds and hostile clients send (clinical-rules.md §10).

A perturbation edits a parsed request's prefetch (or, for duplicate member names, its JSON text); every one is
deterministic for a seed. They reach what the record's intake decides on before it validates anything: the
order and dates of readings (shuffled, future-dated, without an offset, as a period or an instant, undated),
copies with one id (identical, conflicting, versioned), another patient's records, codes sent as a lone object,
unreadable values and statuses, odd entries (not objects, OperationOutcomes, other types, readings of one kind
in another kind's search), more readings than the per-kind cap with invalid ones among the newest, numbers
beyond a double.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = ROOT / "fhir_fixtures" / "requests"
LOINC = "http://loinc.org"
OTHER_PATIENT = "Patient/someone-else-entirely"
VITAL_KEYS = ("bloodPressure", "bodyWeight")
HOOKS = ("order-sign", "order-select")
Body = dict[str, Any]
Resource = dict[str, Any]
Perturbation = Callable[[Body, random.Random, datetime], None]


def without_uuids(value: Any) -> Any:
    """An answer without its card uuids (new for every call), to compare two answers."""
    if isinstance(value, dict):
        return {k: without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [without_uuids(v) for v in value]
    return value


def service_of(body: Body) -> str:
    return {"order-select": "ketamine-order-select", "patient-view": "ketamine-patient-view"}.get(
        str(body.get("hook")), "ketamine-order-sign"
    )


def fixture_requests() -> Iterator[tuple[str, str, bytes]]:
    """(name, service id, raw body) of every request of the fixture library, both hooks."""
    for path in sorted(REQUESTS.glob("*/*.json")):
        raw = path.read_bytes()
        yield f"{path.parent.name}/{path.stem}", service_of(json.loads(raw)), raw


def fixture_body(name: str, hook: str = "order-sign") -> Body:
    body: Body = json.loads((REQUESTS / name / f"{hook}.json").read_text())
    return body


# --------------------------------------------------------------------------- helpers


def _resources(body: Body, key: str) -> list[Resource]:
    bundle = body.get("prefetch", {}).get(key)
    if not isinstance(bundle, dict) or not isinstance(bundle.get("entry"), list):
        return []
    return [e["resource"] for e in bundle["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _bundle(body: Body, key: str) -> Body:
    prefetch = body.setdefault("prefetch", {})
    bundle = prefetch.get(key)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        bundle = prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    if not isinstance(bundle.get("entry"), list):
        bundle["entry"] = []
    entries: Body = bundle
    return entries


def _add(body: Body, key: str, resource: Any, rng: random.Random) -> None:
    entries = _bundle(body, key)["entry"]
    entries.insert(rng.randint(0, len(entries)), {"resource": resource})


def _subject(body: Body) -> dict[str, str]:
    return {"reference": f"Patient/{body['context']['patientId']}"}


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def bp(body: Body, when: str | None, systolic: Any, diastolic: Any, rid: str) -> Resource:
    res: Resource = {
        "resourceType": "Observation", "id": rid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": _subject(body),
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
             "valueQuantity": {"value": systolic, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
             "valueQuantity": {"value": diastolic, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
        ],
    }  # fmt: skip
    if when is not None:
        res["effectiveDateTime"] = when
    return res


def weight(body: Body, when: str | None, kg: Any, rid: str) -> Resource:
    res: Resource = {
        "resourceType": "Observation", "id": rid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
        "subject": _subject(body),
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }  # fmt: skip
    if when is not None:
        res["effectiveDateTime"] = when
    return res


def _vital(body: Body, rng: random.Random, when: str | None, rid: str) -> tuple[str, Resource]:
    if rng.random() < 0.6:
        return "bloodPressure", bp(body, when, rng.randint(90, 200), rng.randint(50, 125), rid)
    return "bodyWeight", weight(body, when, round(rng.uniform(40, 140), 1), rid)


def _days_ago(now: datetime, rng: random.Random, low: float, high: float) -> datetime:
    return now - timedelta(days=rng.uniform(low, high))


# --------------------------------------------------------------------------- perturbations


def shuffled(body: Body, rng: random.Random, now: datetime) -> None:
    for value in body.get("prefetch", {}).values():
        if isinstance(value, dict) and isinstance(value.get("entry"), list):
            rng.shuffle(value["entry"])


def copies(body: Body, rng: random.Random, now: datetime) -> None:
    """Identical copies, in the same search and in another one."""
    keys = [k for k in body.get("prefetch", {}) if _resources(body, k)]
    for key in rng.sample(keys, min(4, len(keys))):
        for res in rng.sample(_resources(body, key), min(3, len(_resources(body, key)))):
            _add(body, rng.choice([key, *VITAL_KEYS]), copy.deepcopy(res), rng)


def conflicting_copies(body: Body, rng: random.Random, now: datetime) -> None:
    """Copies with one id that say different things: with and without versions, readings and other records."""
    for key in rng.sample(list(body.get("prefetch", {})), min(5, len(body.get("prefetch", {})))):
        for res in rng.sample(_resources(body, key), min(2, len(_resources(body, key)))):
            other = copy.deepcopy(res)
            component = other.get("component")
            first = component[0] if isinstance(component, list) and component else component
            if isinstance(other.get("valueQuantity"), dict):
                other["valueQuantity"]["value"] = rng.choice([1, 55.5, 250, 0])
            elif isinstance(first, dict) and isinstance(first.get("valueQuantity"), dict):
                first["valueQuantity"]["value"] = rng.choice([95, 165, 230])
            elif "valueInteger" in other:
                other["valueInteger"] = rng.randint(0, 27)
            else:
                other["status"] = rng.choice(["active", "completed", "stopped", "entered-in-error"])
            versioning = rng.choice(["none", "version", "updated", "mixed"])
            if versioning == "version":
                res["meta"], other["meta"] = {"versionId": "1"}, {"versionId": rng.choice(["2", "1", "x"])}
            elif versioning == "updated":
                res["meta"] = {"lastUpdated": _stamp(now - timedelta(days=3))}
                other["meta"] = {"lastUpdated": rng.choice([_stamp(now - timedelta(days=1)), "2026-11-20T10:00:00"])}
            elif versioning == "mixed":
                other["meta"] = {"versionId": "2"}
            _add(body, rng.choice([key, key, *VITAL_KEYS]), other, rng)


def another_patient(body: Body, rng: random.Random, now: datetime) -> None:
    """Another patient's readings and records, alarming ones among them, also under the cap's newest places."""
    for i in range(rng.randint(3, 12)):
        key, res = _vital(body, rng, _stamp(_days_ago(now, rng, 0, 20)), f"other-{i}")
        res["subject"] = {"reference": rng.choice([OTHER_PATIENT, "https://x.example/fhir/Patient/9",
                                                   "Group/7", "Patient/someone-else/_history/2"])}
        _add(body, key, res, rng)
    res = copy.deepcopy(rng.choice(_resources(body, "conditions") or [{"resourceType": "Condition"}]))
    res["subject"] = {"reference": OTHER_PATIENT}
    res["id"] = "other-condition"
    _add(body, "conditions", res, rng)


def unresolvable_subjects(body: Body, rng: random.Random, now: datetime) -> None:
    """Readings whose subject is only an identifier, a display, a contained or urn reference, or missing."""
    for i, subject in enumerate([{"identifier": {"value": "1"}}, {"display": "Jane"}, {"reference": "#p1"},
                                 {"reference": "urn:uuid:1234"}, None, "Patient/1", {"reference": ""}]):  # fmt: skip
        key, res = _vital(body, rng, _stamp(_days_ago(now, rng, 0, 40)), f"subject-{i}")
        if subject is None:
            del res["subject"]
        else:
            res["subject"] = subject
        if i % 2:
            res["patient"] = {"reference": rng.choice([OTHER_PATIENT, res.get("subject", {}) and "Patient/x"])}
        _add(body, key, res, rng)


def future_readings(body: Body, rng: random.Random, now: datetime) -> None:
    """Readings dated ahead of now (some only just within the tolerance), enough to fill the cap."""
    for i in range(rng.randint(5, 25)):
        ahead = rng.choice([rng.uniform(1.01, 30), rng.uniform(0.5, 0.99), 1.0 + rng.uniform(-0.01, 0.01)])
        key, res = _vital(body, rng, _stamp(now + timedelta(days=ahead)), f"future-{i}")
        _add(body, key, res, rng)


def many_readings(body: Body, rng: random.Random, now: datetime) -> None:
    """More readings than the per-kind cap, the newest of them unreadable or implausible, some at one instant."""
    moment = _days_ago(now, rng, 0, 5)
    for i in range(rng.randint(12, 40)):
        when = moment if i % 7 == 0 else _days_ago(now, rng, 0, 400)
        key, res = _vital(body, rng, _stamp(when), f"many-{i}")
        if i < 14 and rng.random() < 0.5:
            damage = rng.choice(["status", "value", "component", "date", "code"])
            if damage == "status":
                res["status"] = rng.choice(["bogus", 7, "entered-in-error", "cancelled", "preliminary"])
            elif damage == "value":
                target = res["component"][0] if "component" in res else res
                target["valueQuantity"]["value"] = rng.choice(["high", None, True, 1e9, -5, 0])
            elif damage == "component":
                res["component"] = rng.choice(["120/80", {"code": {}}, [None], []])
            elif damage == "date":
                res["effectiveDateTime"] = rng.choice(["yesterday", "2026-13-40", 20261120, "2026-11-20T25:00:00Z"])
            else:
                res["code"] = rng.choice([{"coding": {"system": LOINC, "code": "85354-9"}}, {"text": "BP"}, None])
        _add(body, key, res, rng)


def date_shapes(body: Body, rng: random.Random, now: datetime) -> None:
    """Readings dated without an offset, by a period, an instant, only ``issued``, partially, or not at all."""
    for i in range(rng.randint(4, 14)):
        when = _days_ago(now, rng, 0, 120)
        key, res = _vital(body, rng, None, f"date-{i}")
        shape = rng.choice(["naive", "naive-minutes", "period", "open-period", "instant", "issued", "partial",
                            "none", "offset"])  # fmt: skip
        if shape == "naive":
            res["effectiveDateTime"] = when.replace(tzinfo=None).isoformat(timespec="seconds")
        elif shape == "naive-minutes":
            res["effectiveDateTime"] = when.replace(tzinfo=None).isoformat(timespec="minutes")
        elif shape == "period":
            res["effectivePeriod"] = {"start": _stamp(when), "end": _stamp(when + timedelta(minutes=5))}
        elif shape == "open-period":
            res["effectivePeriod"] = {"end": when.replace(tzinfo=None).isoformat(timespec="seconds")}
        elif shape == "instant":
            res["effectiveInstant"] = _stamp(when)
        elif shape == "issued":
            res["issued"] = when.replace(tzinfo=None).isoformat(timespec="seconds")
        elif shape == "partial":
            res["effectiveDateTime"] = when.date().isoformat()[: rng.choice([4, 7, 10])]
        elif shape == "offset":
            res["effectiveDateTime"] = when.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(["+05:30", "-08:00"])
        _add(body, key, res, rng)
    for res in rng.sample(_resources(body, "bloodPressure"), min(3, len(_resources(body, "bloodPressure")))):
        if isinstance(res.get("effectiveDateTime"), str) and res["effectiveDateTime"].endswith("Z"):
            res["effectiveDateTime"] = res["effectiveDateTime"][:-1]


def lone_objects(body: Body, rng: random.Random, now: datetime) -> None:
    """A coding or a component sent as one object where FHIR has a list."""
    for key in (*VITAL_KEYS, "depressionScores", "conditions"):
        for res in _resources(body, key)[: rng.randint(0, 3)]:
            code = res.get("code")
            if isinstance(code, dict) and isinstance(code.get("coding"), list) and code["coding"]:
                code["coding"] = code["coding"][0]
            if isinstance(res.get("component"), list) and res["component"] and rng.random() < 0.5:
                res["component"] = res["component"][0]


def stray_entries(body: Body, rng: random.Random, now: datetime) -> None:
    """Entries that are not resources, OperationOutcomes, other types, and readings filed in the wrong search."""
    strays: list[Any] = [
        1, "x", None, [], {}, {"resource": None}, {"resource": []}, {"resource": "Observation"},
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "too-costly"}]}},
        {"fullUrl": "urn:x", "search": {"mode": "include"}},
    ]
    for key in VITAL_KEYS:
        entries = _bundle(body, key)["entry"]
        for stray in rng.sample(strays, rng.randint(1, 4)):
            entries.insert(rng.randint(0, len(entries)), copy.deepcopy(stray))
    phq = {"resourceType": "Observation", "id": "phq-in-bp", "status": "final", "subject": _subject(body),
           "code": {"coding": [{"system": LOINC, "code": "44261-6"}]}, "valueInteger": 21,
           "effectiveDateTime": _stamp(_days_ago(now, rng, 0, 10))}  # fmt: skip
    feeding = {"resourceType": "Observation", "id": "feeding", "status": "final", "subject": _subject(body),
               "code": {"text": "Breastfeeding status"}, "valueString": "currently breastfeeding",
               "effectiveDateTime": _stamp(_days_ago(now, rng, 0, 30))}  # fmt: skip
    for res in (phq, feeding, weight(body, _stamp(_days_ago(now, rng, 0, 9)), 71, "weight-in-bp")):
        _add(body, "bloodPressure", res, rng)
    _add(body, "bodyWeight", bp(body, _stamp(_days_ago(now, rng, 0, 9)), 171, 101, "bp-in-weight"), rng)
    condition = copy.deepcopy(rng.choice(_resources(body, "conditions") or [{"resourceType": "Condition"}]))
    condition["id"] = "condition-in-bp"
    _add(body, "bloodPressure", condition, rng)
    if rng.random() < 0.5:
        _add(body, "bodyWeight", {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}, rng)


def odd_heads(body: Body, rng: random.Random, now: datetime) -> None:
    """Readings whose type, id, status, code, subject or dates have the wrong JSON type."""
    odd: list[tuple[str, Any]] = [("resourceType", None), ("resourceType", 5), ("id", 12), ("id", ""), ("id", None),
                                  ("status", ["final"]), ("status", {"a": 1}), ("code", "85354-9"), ("code", []),
                                  ("subject", ["Patient/x"]), ("effectiveDateTime", 5), ("effectivePeriod", "x"),
                                  ("effectiveInstant", {"a": 1}), ("issued", 17.5), ("meta", "v2")]  # fmt: skip
    for i, (element, value) in enumerate(rng.sample(odd, rng.randint(3, len(odd)))):
        key, res = _vital(body, rng, _stamp(_days_ago(now, rng, 0, 20)), f"odd-{i}")
        if value is None:
            res.pop(element, None)
        else:
            res[element] = value
        _add(body, key, res, rng)


def next_page(body: Body, rng: random.Random, now: datetime) -> None:
    """A vital-sign search that says it has a next page."""
    bundle = _bundle(body, rng.choice(VITAL_KEYS))
    bundle["link"] = [{"relation": "next", "url": "https://ehr.example.org/fhir/Observation?page=2"}]
    bundle["total"] = 9999


PERTURBATIONS: dict[str, Perturbation] = {
    "shuffled": shuffled, "copies": copies, "conflicting-copies": conflicting_copies,
    "another-patient": another_patient, "unresolvable-subjects": unresolvable_subjects,
    "future-readings": future_readings, "many-readings": many_readings, "date-shapes": date_shapes,
    "lone-objects": lone_objects, "stray-entries": stray_entries, "odd-heads": odd_heads, "next-page": next_page,
}  # fmt: skip


def perturbed(body: Body, names: list[str], rng: random.Random, now: datetime) -> Body:
    body = copy.deepcopy(body)
    body.setdefault("prefetch", {})
    for name in names:
        PERTURBATIONS[name](body, rng, now)
    return body


# --------------------------------------------------------------------------- raw-text variants


def duplicate_members(raw: bytes) -> bytes:
    """Every reading's date sent twice (the first a decoy): the last one wins, as JSON parsers read it."""
    decoy = b'"effectiveDateTime": "1999-01-01T00:00:00Z", '
    return raw.replace(b'"effectiveDateTime": "', decoy + b'"effectiveDateTime": "')


def huge_number(raw: bytes, rng: random.Random) -> bytes:
    """One reading's value beyond a double (1e400, or 400 digits with a fraction) somewhere in a vital search."""
    text = raw.decode()
    start = text.find('"bloodPressure"')
    at = text.find('"value": ', start)
    if start < 0 or at < 0:
        return raw
    at += len('"value": ')
    end = at
    while text[end] in "0123456789.-":
        end += 1
    number = rng.choice(["1e400", "-2E+309", "9" * 400 + ".5", "1.8e308"])
    return (text[:at] + number + text[end:]).encode()


def corpus(now: datetime, *, seeds: int = 2, fixtures: list[str] | None = None) -> Iterator[tuple[str, str, bytes]]:
    """(name, service id, raw body) of the fixture requests, the benchmark workloads, and perturbed copies of
    ``fixtures`` (default: every fixture), ``seeds`` per perturbation and fixture, both hooks."""
    from benchmarks.workloads import build_workloads

    yield from fixture_requests()
    bodies: list[tuple[str, Body]] = []
    for workload in build_workloads(now):
        if not workload.needs_fhir_stub:
            yield f"workload/{workload.name}", workload.service_id, json.dumps(workload.body).encode()
            if workload.resources < 1000:
                bodies.append((f"workload/{workload.name}", workload.body))
    names = fixtures if fixtures is not None else sorted(p.name for p in REQUESTS.iterdir())
    bodies += [(f"{name}/{hook}", fixture_body(name, hook)) for name in names for hook in HOOKS]
    for index, (name, body) in enumerate(bodies):
        sid = service_of(body)
        for seed in range(seeds):
            rng = random.Random(f"{name}/{seed}")
            chosen = rng.sample(sorted(PERTURBATIONS), rng.randint(1, 4))
            raw = json.dumps(perturbed(body, chosen, rng, now)).encode()
            yield f"{name}/{seed}:{'+'.join(chosen)}", sid, raw
            if seed == 0:
                yield f"{name}/duplicate-members", sid, duplicate_members(raw)
                if index % 10 == 0:
                    yield f"{name}/huge-number", sid, huge_number(raw, rng)
