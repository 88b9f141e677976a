"""The prefetch templates find what real servers hold, and stay legal CDS Hooks 2.0 prefetch (cds-hooks-spec.md §3).

A real FHIR server ANDs search parameters: ``category=survey&code=44261-6`` finds only PHQ-9s filed as surveys.
Scores are therefore asked for by two keys, one by category and one by code, and merged in the record.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses

from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.memory import MemoryServer
from cds_service.fhir.prefetch import resolve_prefetch
from cds_service.fhir.templates import fill
from cds_service.hooks.catalog import PREFETCH, SERVICES
from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from tests.builders.requests import FHIR, PATIENT_ID, bundle, full_prefetch, hook_request, settings
from tests.clock import NOW

KEYS = {k.key: k for k in SERVICES["ketamine-order-sign"].prefetch}
TOKEN = re.compile(r"\{\{context\.patientId\}\}")
# CDS Hooks 2.0 (S2.0.1 L324-334): instance reads; type searches with reference, token (equality), _count,
# _sort; plus _include (the spec's own examples use it). No modifiers other than :in, no chained or text search.
ALLOWED = {"patient", "subject", "code", "category", "status", "_count", "_sort", "_include", "_id"}


@pytest.mark.parametrize("key", [k.key for k in PREFETCH])
def test_every_template_is_legal_cds_hooks_2_prefetch(key: str) -> None:
    template = KEYS[key].template
    assert TOKEN.search(template) and template.count("{{") == template.count("{{context.patientId}}")
    if KEYS[key].is_read:
        assert template == "Patient/{{context.patientId}}"
        return
    rtype, query = template.split("?", 1)
    assert rtype.isalpha()
    for name, value in parse_qsl(query):
        base, _, modifier = name.partition(":")
        assert base in ALLOWED and modifier in ("", "in"), name
        if name == "_sort":
            assert value == "-date"


def test_scores_are_asked_for_by_category_and_by_code() -> None:
    by_category, by_code = KEYS["depressionScores"], KEYS["depressionScoresByCode"]
    assert by_category.kind == by_code.kind == kinds.SCORES
    assert "category=survey" in by_category.template and "code=" not in by_category.template
    assert "http://loinc.org|44261-6" in by_code.template and "category" not in by_code.template
    assert by_category.follow_pages and by_code.follow_pages  # whole history: trials need old scores


def _phq9(rid: str, category: str | None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "effectiveDateTime": "2026-11-20T09:00:00Z",
        "valueInteger": 18,
    }
    if category:
        cs = "http://terminology.hl7.org/CodeSystem/observation-category"
        res["category"] = [{"coding": [{"system": cs, "code": category}]}]
    return res


@pytest.mark.parametrize("category", ["survey", "exam", None])
def test_a_phq9_is_found_whatever_its_category_and_read_once(kb: Knowledge, category: str | None) -> None:
    """Both keys answered by a server that honours search parameters: a survey PHQ-9 comes twice, once per key."""
    server = MemoryServer([{"resourceType": "Patient", "id": PATIENT_ID}, _phq9("phq", category)], FHIR)
    context = {"patientId": PATIENT_ID}
    prefetch = full_prefetch()
    for key in ("depressionScores", "depressionScoresByCode"):
        prefetch[key] = server.query(fill(KEYS[key].template, context)).body
    found_by_category = bool(prefetch["depressionScores"]["entry"])
    assert found_by_category is (category == "survey")
    assert prefetch["depressionScoresByCode"]["entry"]
    s = settings()
    res = resolve_prefetch(
        tuple(KEYS.values()), hook_request(prefetch=prefetch), settings=s,
        allowlist=ServerAllowlist(s.fhir_server_allowlist), session=requests.Session(),
    )  # fmt: skip
    record = build_record(res.resources, kb, available=res.available, patient_id=PATIENT_ID, now=NOW)
    assert [(x.resource_id, x.value) for x in record.scores] == [("phq", 18)]
    assert record.set_aside == () and record.normalised == ()


def test_scores_are_not_available_when_one_of_their_keys_failed() -> None:
    prefetch = full_prefetch()
    prefetch["depressionScoresByCode"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    s = settings()
    with responses.RequestsMock():
        res = resolve_prefetch(
            tuple(KEYS.values()), hook_request(prefetch=prefetch, fhir_server=FHIR), settings=s,
            allowlist=ServerAllowlist(s.fhir_server_allowlist), session=requests.Session(),
        )  # fmt: skip
    assert kinds.SCORES not in res.available and kinds.BLOOD_PRESSURE in res.available
    assert [g.key for g in res.gaps] == ["depressionScoresByCode"]


def test_without_prefetch_both_score_queries_go_to_the_server() -> None:
    prefetch = full_prefetch()
    del prefetch["depressionScores"], prefetch["depressionScoresByCode"]
    s = settings()
    with responses.RequestsMock() as mock:
        mock.get(f"{FHIR}/Observation", json=bundle())
        res = resolve_prefetch(
            tuple(KEYS.values()), hook_request(prefetch=prefetch, fhir_server=FHIR), settings=s,
            allowlist=ServerAllowlist(s.fhir_server_allowlist), session=requests.Session(),
        )  # fmt: skip
        queries = sorted(dict(parse_qsl(c.request.url.split("?", 1)[1])).get("category", "by code") for c in mock.calls)
    assert queries == ["by code", "survey"]
    assert res.states["depressionScores"] == res.states["depressionScoresByCode"] == "fetched"


def _reading(rid: str, when: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "effectiveDateTime": when}


@pytest.mark.parametrize(
    ("first_page", "reads_on"), [(["2026-12-20T09:00:00Z"], True), (["2026-11-23T11:00:00Z"], False)]
)
def test_a_latest_value_page_of_only_future_readings_reads_on(first_page: list[str], reads_on: bool) -> None:
    """A device clock weeks ahead fills the ``_count`` of a latest-value search: the next page is read (S2.0.1
    paging), until a reading dated before now is found; otherwise only the first page is (as the template says)."""
    prefetch = full_prefetch()
    prefetch["bloodPressure"] = bundle(*(_reading(f"f{i}", w) for i, w in enumerate(first_page)),
                                       next_url=f"{FHIR}/Observation?page=2")  # fmt: skip
    s = settings()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{FHIR}/Observation", json=bundle(_reading("yesterday", "2026-11-22T09:00:00Z")))
        res = resolve_prefetch(
            tuple(KEYS.values()), hook_request(prefetch=prefetch, fhir_server=FHIR), settings=s,
            allowlist=ServerAllowlist(s.fhir_server_allowlist), session=requests.Session(), now=NOW,
        )  # fmt: skip
        calls = len(mock.calls)
    assert calls == (1 if reads_on else 0)
    assert ("yesterday" in {r["id"] for r in res.resources}) is reads_on
