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
EVERY_KEY = {k.key: k for service in SERVICES.values() for k in service.prefetch}  # one template per key name
TOKEN = re.compile(r"\{\{context\.patientId\}\}")
# CDS Hooks 2.0 (S2.0.1 L324-334): instance reads; type searches with reference, token (equality), _count,
# _sort; plus _include (the spec's own examples use it). No modifiers other than :in, no chained or text search.
ALLOWED = {"patient", "subject", "code", "category", "status", "_count", "_sort", "_include", "_id"}


@pytest.mark.parametrize("key", sorted(EVERY_KEY))
def test_every_template_is_legal_cds_hooks_2_prefetch(key: str) -> None:
    template = EVERY_KEY[key].template
    assert TOKEN.search(template) and template.count("{{") == template.count("{{context.patientId}}")
    if EVERY_KEY[key].is_read:
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


# --- patient-view (clinical-rules.md §11) ------------------------------------------------------------------------

PATIENT_VIEW = SERVICES["ketamine-patient-view"]


def test_patient_view_is_a_descriptor_with_its_own_templates_and_a_conditions_screen() -> None:
    entry = PATIENT_VIEW.discovery_entry()
    assert (entry["hook"], entry["id"]) == ("patient-view", "ketamine-patient-view")
    assert entry["prefetch"]["procedures"] == "Procedure?patient={{context.patientId}}"
    assert "bodyWeight" not in entry["prefetch"]  # only a dose needs the weight
    assert {k: v for k, v in entry["prefetch"].items() if k != "procedures"} == {
        k.key: k.template for k in PREFETCH if k.key in entry["prefetch"]}  # fmt: skip
    assert PATIENT_VIEW.screen is not None and PATIENT_VIEW.screen.keys == frozenset({"conditions"})
    assert PATIENT_VIEW.rules.name == "patient-view" and PATIENT_VIEW.request_schema == "PatientViewRequest"


def _patient_view_without_prefetch(kb: Knowledge, resources: list[dict[str, Any]]) -> tuple[Any, list[str]]:
    from cds_service.hooks import pipeline
    from cds_service.hooks.body import HookBody
    from cds_service.hooks.gather import RequestPrefetch
    from tests.hooks.recorder import Recorder
    from tests.sandbox.sandbox_support import fhir_mock

    request = HookBody.parsed(hook_request("patient-view", fhir_server=FHIR))
    observer = Recorder()
    with fhir_mock(MemoryServer(resources, FHIR)) as mock:
        answer = pipeline.run(PATIENT_VIEW, request, kb=kb, settings=settings(), now=NOW, base_url="https://cds.test",
                              source=RequestPrefetch(request, ServerAllowlist(settings().fhir_server_allowlist)),
                              observer=observer)  # fmt: skip
        fetched = [call.request.url.split("?")[0].split("/r4/", 1)[1].split("/")[0] for call in mock.calls]
    assert ("note", "no depressive disorder") in observer.events or fetched[1:]
    return answer.decision.response(), fetched


def _resources(*codes: str) -> list[dict[str, Any]]:
    from tests.builders.requests import condition, patient

    return [patient(), *(condition(code) for code in codes)]


def test_a_chart_without_depression_costs_the_conditions_search_alone(kb: Knowledge) -> None:
    response, fetched = _patient_view_without_prefetch(kb, _resources("I10", "F43.12"))
    assert (response, fetched) == ({"cards": []}, ["Condition"])


def test_a_depressed_patients_chart_reads_the_rest(kb: Knowledge) -> None:
    _, fetched = _patient_view_without_prefetch(kb, _resources("F33.2"))
    assert fetched[0] == "Condition"
    assert {"Patient", "MedicationRequest", "MedicationAdministration", "Procedure", "Observation"} <= set(fetched[1:])


@pytest.mark.parametrize(("code", "status"), [("I10", 200), ("F33.2", 400)])
def test_a_chart_without_depression_never_decodes_a_prefetch_member_but_the_conditions(
    kb: Knowledge, code: str, status: int
) -> None:
    """Every member but ``conditions`` holds a number beyond a 64-bit float: decoding one is a 400 naming it.
    Without depression none is decoded (200, no cards); with depression they are read, and refused."""
    import json

    from cds_service.hooks import pipeline
    from cds_service.hooks.body import decode_hook_body
    from cds_service.hooks.errors import HookError
    from tests.builders.requests import condition

    prefetch: dict[str, Any] = {key.key: {"resourceType": "Bundle", "type": "searchset", "total": 1e308}
                                for key in PATIENT_VIEW.prefetch}  # fmt: skip
    prefetch["conditions"] = bundle(condition(code))
    raw = json.dumps(hook_request("patient-view", prefetch=prefetch)).replace("1e+308", "1e400")
    s = settings()
    try:
        answer = pipeline.run(PATIENT_VIEW, decode_hook_body(raw.encode(), s.max_json_depth), kb=kb, settings=s,
                              now=NOW, base_url="https://cds.test")  # fmt: skip
    except HookError as refused:
        assert refused.status == status and str(refused.issues[0].expression).startswith("prefetch.")
        assert refused.issues[0].expression != "prefetch.conditions"
    else:
        assert (status, answer.decision.response()) == (200, {"cards": []})
