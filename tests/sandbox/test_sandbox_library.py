"""The fixture library itself: complete, valid FHIR, loadable, up to date with its generator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from cds_service.fhir.memory import MemoryServer, resources_from_bundle
from cds_service.hooks.catalog import SERVICES
from cds_service.sandbox.fixtures import load_manifest, read_json
from cds_service.sandbox.requests import HOOKS, prefetch_templates

MANIFEST = load_manifest()
REPO = Path(__file__).resolve().parents[2]

# Every topic code of clinical-rules.md version 2 (a public contract: never renamed; retired codes stay listed).
CATALOGUE_TOPICS = {
    "eligibility-summary", "trd-criteria-unmet", "depression-severity-undocumented",
    "depression-severity-insufficient", "indication-undocumented", "antidepressant-not-concurrent",
    "bipolar-mood-stabilizer-missing", "bipolar-mood-stabilizer-nonstandard", "mania-current",
    "hypertension-uncontrolled", "hypertension-elevated", "blood-pressure-undocumented", "psychosis",
    "ketamine-misuse-history", "substance-use-disorder", "cardiovascular-disease", "hepatic-impairment",
    "intracranial-pressure", "intraocular-pressure", "pregnancy", "hypersensitivity", "drug-interaction",
    "minor-patient", "genitourinary-toxicity", "lactation", "weight-undocumented", "dose-anesthetic-range",
    "dose-above-standard", "dose-below-range", "infusion-too-fast", "frequency-above-protocol",
    "dose-standard-suggestion", "esketamine-dose-low", "esketamine-dose-high", "esketamine-first-dose",
    "esketamine-rems", "nonresponse-after-infusions", "acute-course-complete", "chronic-pain-evidence",
    "ptsd-evidence", "suicidal-ideation", "pre-dose-data-missing", "course-status", "trd-candidate",
}  # fmt: skip
RETIRED = {"depression-severity-undocumented", "blood-pressure-undocumented", "weight-undocumented",
           "esketamine-rems", "dose-standard-suggestion"}  # fmt: skip
PATIENT_VIEW = {"course-status", "trd-candidate"}  # §11: no order is drafted, so no order fixture shows them
MESS = {
    "mess:product-rxnorm", "mess:medicationReference", "mess:medicationrequest-only", "mess:legacy-bp-panel",
    "mess:weight-lb", "mess:phq9-valueInteger", "mess:missing-verificationStatus", "mess:entered-in-error",
    "long-history",
}  # fmt: skip
BOUNDARY_PAIRS = [
    ("boundary:bp-159-99", "boundary:bp-160-100"), ("boundary:trd-1-adequate-trial", "boundary:trd-2-adequate-trials"),
    ("boundary:phq9-14", "boundary:phq9-15"), ("boundary:dose-0.5-mg-per-kg", "boundary:dose-0.526-mg-per-kg"),
    ("boundary:esketamine-84mg", "boundary:esketamine-85mg"), ("boundary:age-64", "boundary:age-65"),
    ("boundary:esketamine-84mg-prior-session", "boundary:esketamine-84mg-no-prior-session"),
    ("boundary:esketamine-3-per-week-induction", "boundary:esketamine-84mg"),
    ("boundary:esketamine-2-per-week-maintenance", "boundary:esketamine-1-per-week-maintenance"),
    ("boundary:nonresponder-0.75-mg-per-kg", "boundary:nonresponder-0.76-mg-per-kg"),
    ("boundary:pain-rate-0.5", "boundary:pain-rate-0.51"),
    ("boundary:weight-change-20-percent", "boundary:weight-change-21-percent"),
    ("boundary:esketamine-session-7", "boundary:esketamine-session-8"),
    ("boundary:interval-6-days", "boundary:interval-7-days"),
    ("boundary:weight-29.9-kg", "boundary:weight-30-kg"), ("boundary:weight-300-kg", "boundary:weight-300.1-kg"),
    # version 2 (rules-v2)
    ("boundary:17y364d", "boundary:18y"), ("boundary:mi-6-weeks", "boundary:mi-10-weeks"),
    ("boundary:pregnancy-299-days", "boundary:pregnancy-301-days"),
    ("boundary:hypertensive-urgency-29-days", "boundary:hypertensive-urgency-31-days"),
    ("boundary:maoi-13-days", "boundary:maoi-15-days"),
    ("boundary:five-administrations", "boundary:six-administrations"),
    ("boundary:hcg-4", "boundary:hcg-10"), ("boundary:hcg-10", "boundary:hcg-25"),
    # patient-view (§11)
    ("boundary:course-latest-56-days", "boundary:course-latest-57-days"),
    ("boundary:remission-phq9-5", "boundary:remission-phq9-6"),
    ("boundary:response-48-percent", "boundary:response-50-percent"),
    ("boundary:ketamine-364-days", "boundary:ketamine-366-days"), ("boundary:ect-364-days", "boundary:ect-366-days"),
]  # fmt: skip


def test_library_size_and_topic_coverage(kb) -> None:  # type: ignore[no-untyped-def]
    """Every order-hook topic the knowledge base has texts for is shown by a fixture; no retired one is expected."""
    assert len(MANIFEST.entries) >= 25
    covered = {c.topic for e in MANIFEST.entries for c in e.expected}
    live = {code for code, topic in kb.topics.items() if not topic.retired} - PATIENT_VIEW
    assert covered == live
    assert not covered & RETIRED
    assert {code for code, topic in kb.topics.items() if topic.retired} <= RETIRED
    indicators = {(c.topic, c.indicator) for e in MANIFEST.entries for c in e.expected}
    # the two-indicator topics appear with both indicators
    for topic, both in (("psychosis", {"critical", "warning"}), ("esketamine-dose-low", {"warning", "info"}),
                        ("chronic-pain-evidence", {"info", "warning"})):
        assert {i for t, i in indicators if t == topic} == both, topic


def test_catalogue_topics_are_the_documented_ones() -> None:
    rules = REPO.parent / "shared" / "clinical-rules.md"
    if not rules.is_file():
        pytest.skip("shared/clinical-rules.md is not beside this checkout")
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", rules.read_text(encoding="utf-8"), re.M))
    assert documented | {"eligibility-summary"} == CATALOGUE_TOPICS


def test_every_expectation_is_well_formed() -> None:
    tags = Counter(t for e in MANIFEST.entries for t in e.covers)
    assert set(tags) >= MESS, MESS - set(tags)
    for low, high in BOUNDARY_PAIRS:
        assert tags[low] and tags[high], (low, high)
    names = [e.name for e in MANIFEST.entries]
    assert len(names) == len(set(names))
    for e in MANIFEST.entries:
        cards = [c.as_tuple() for c in e.expected]
        assert all(ind in ("info", "warning", "critical") for _, ind in cards), e.name
        assert not {t for t, _ in cards} & RETIRED, f"{e.name}: a retired code is never emitted"
        pairs = [t.removeprefix("pair:") for t in e.covers if t.startswith("pair:")]
        assert all(p in names for p in pairs), f"{e.name}: its boundary pair {pairs} is in the library"
        if e.order_template == "oral-sertraline-50mg" or "scope:out-of-scope-no-cards" in e.covers:
            assert cards == [], e.name
        else:
            assert cards[0] == ("eligibility-summary", "info"), e.name
            assert len({t for t, _ in cards}) == len(cards), f"{e.name}: one card per topic"
        assert e.story and len(e.story) < 600, e.name
    long = [e for e in MANIFEST.entries if "long-history" in e.covers]
    assert long and len(MANIFEST.bundle(long[0])["entry"]) >= 200


@pytest.mark.parametrize("name", [e.name for e in MANIFEST.entries])
def test_bundle_is_a_valid_fhir_transaction(name: str) -> None:
    bundle = MANIFEST.bundle(MANIFEST.get(name))
    Bundle.model_validate(bundle)  # FHIR R4(B) structure of every resource
    assert bundle["type"] == "transaction"
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(u.startswith("urn:uuid:") for u in urls) and len(urls) == len(bundle["entry"])
    assert [e["resource"]["resourceType"] for e in bundle["entry"]].count("Patient") == 1
    for entry in bundle["entry"]:
        assert entry["request"] == {"method": "POST", "url": entry["resource"]["resourceType"]}
        assert "id" not in entry["resource"], "the server assigns ids"
    refs = re.findall(r'"reference": "(urn:uuid:[^"]+)"', json.dumps(bundle))
    assert set(refs) <= urls, "every urn:uuid reference points inside the bundle"
    text = json.dumps(bundle)
    assert "UNVERIFIED" not in text


@pytest.mark.parametrize("name", [e.name for e in MANIFEST.entries])
def test_committed_requests_match_bundle_and_catalog(name: str) -> None:
    entry = MANIFEST.get(name)
    resources = resources_from_bundle(MANIFEST.bundle(entry))
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    for hook in HOOKS:
        req = read_json(MANIFEST.root / "requests" / name / f"{hook}.json")
        assert req["hook"] == hook and req["context"]["patientId"] == patient_id
        orders = req["context"]["draftOrders"]["entry"]
        assert len(orders) == 1 and orders[0]["resource"]["status"] == "draft"
        if hook == "order-select":
            assert req["context"]["selections"] == [f"MedicationRequest/{orders[0]['resource']['id']}"]
        assert set(req["prefetch"]) == set(prefetch_templates(hook))
        assert req["prefetch"]["patient"]["id"] == patient_id


def test_prefetch_templates_are_the_services() -> None:
    for svc in SERVICES.values():
        assert prefetch_templates(svc.hook) == {p.key: p.template for p in svc.prefetch}


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "fhir_fixtures" / "build.py"), "--check"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, "run: .venv/bin/python fhir_fixtures/build.py\n" + result.stdout[-2000:]


def test_fixture_server_answers_the_searches_prefetch_uses() -> None:
    bundle = MANIFEST.bundle(MANIFEST.get("mess-eligible-real-feed"))
    resources = resources_from_bundle(bundle)
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    server = MemoryServer(resources, "https://fhir.test/r4")
    assert server.query(f"Patient/{pid}").body["id"] == pid
    assert server.query("Patient/nobody").body is None
    meds = server.query(f"MedicationRequest?patient={pid}&_include=MedicationRequest:medication").body
    modes = Counter(e["search"]["mode"] for e in meds["entry"])
    assert modes["include"] == 2 and modes["match"] > 2
    assert all(e["resource"]["medicationReference"]["reference"].startswith("Medication/")
               for e in meds["entry"] if e["search"]["mode"] == "match")
    bp = server.query(f"https://fhir.test/r4/Observation?patient=Patient/{pid}&code=http://loinc.org|55284-4").body
    assert [e["resource"]["code"]["coding"][0]["code"] for e in bp["entry"]] == ["55284-4"]
    assert server.query(f"Observation?patient={pid}&code=http://snomed.info/sct|55284-4").body["total"] == 0
    scores = server.query(f"Observation?patient={pid}&category=survey&_sort=-date&_count=2").body
    dates = [e["resource"]["effectiveDateTime"] for e in scores["entry"]]
    assert len(dates) == 2 and dates == sorted(dates, reverse=True)
    other = server.query("Condition?patient=someone-else").body
    assert other["total"] == 0


def test_card_comparison_catches_every_kind_of_difference() -> None:
    from tests.sandbox.sandbox_support import card_mismatch

    summary, bp = ("eligibility-summary", "info"), ("hypertension-uncontrolled", "critical")
    assert card_mismatch([summary, bp], [summary, bp]) is None
    assert card_mismatch([bp, summary], [summary, bp]) == "first card [('hypertension-uncontrolled', 'critical')] " \
        "should be [('eligibility-summary', 'info')]"
    assert "missing" in (card_mismatch([summary], [summary, bp]) or "")
    assert "unexpected" in (card_mismatch([summary, bp, bp], [summary, bp]) or "")
    assert "unexpected" in (card_mismatch([summary, ("hypertension-uncontrolled", "warning")], [summary, bp]) or "")
    assert card_mismatch([], []) is None and card_mismatch([summary], []) is not None
