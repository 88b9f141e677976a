"""The gather stage: a screen that ends the call before the rest of the prefetch is read, and the record as of an
instant from either source (the request's prefetch, or a patient's export answered as the EHR would have then)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.fhir.allowlist import ServerAllowlist
from cds_service.fhir.memory import MemoryServer
from cds_service.hooks import pipeline
from cds_service.hooks.body import HookBody, decode_hook_body
from cds_service.hooks.catalog import SERVICES, Screen, ServiceDefinition
from cds_service.hooks.errors import HookError
from cds_service.hooks.gather import PatientExport, RequestPrefetch, gather
from cds_service.record.model import PatientRecord
from tests.builders.requests import FHIR, blood_pressure, condition, full_prefetch, hook_request, patient, settings
from tests.clock import NOW
from tests.hooks.recorder import Recorder
from tests.sandbox.sandbox_support import fhir_mock

SIGN = SERVICES["ketamine-order-sign"]


def depressed(record: PatientRecord, kb: Any, now: datetime) -> bool:
    return bool(record.conditions_in("depression"))


# The order-sign service, screened the way patient-view will be: the conditions first, the rest only for the depressed
SCREENED: ServiceDefinition[Any] = dataclasses.replace(
    SIGN, screen=Screen(frozenset({"conditions"}), go_on=depressed, note="not depressed")
)


def allowed() -> ServerAllowlist:
    return ServerAllowlist(settings().fhir_server_allowlist)


def run_screened(kb: Any, resources: list[dict[str, Any]], observer: Recorder) -> tuple[dict[str, Any], list[str]]:
    """The screened service without prefetch: what it answers, and the resource types it searched or read."""
    request = HookBody.parsed(hook_request(fhir_server=FHIR))
    with fhir_mock(MemoryServer(resources, FHIR)) as mock:
        answer = pipeline.run(SCREENED, request, kb=kb, settings=settings(), now=NOW, base_url="https://cds.test",
                              source=RequestPrefetch(request, allowed()), observer=observer)  # fmt: skip
        fetched = [call.request.url.split("?")[0].split("/r4/", 1)[1].split("/")[0] for call in mock.calls]
    return answer.decision.response(), fetched


def test_a_screen_that_says_no_ends_the_call_after_its_keys_alone(kb: Any) -> None:
    observer = Recorder()
    response, fetched = run_screened(kb, [patient(), condition("I10")], observer)
    assert response == {"cards": []}
    assert fetched == ["Condition"]  # nothing else was fetched
    assert ("note", "not depressed") in observer.events


def test_a_screen_that_says_go_on_reads_the_rest_and_answers_as_the_unscreened_service(kb: Any) -> None:
    resources = [patient(), condition("F33.2"), blood_pressure("bp-1", NOW - timedelta(days=2), 172, 104)]
    response, fetched = run_screened(kb, resources, Recorder())
    assert fetched[0] == "Condition" and {"Patient", "MedicationRequest", "Observation"} <= set(fetched[1:])
    s = settings()
    with fhir_mock(MemoryServer(resources, FHIR)):
        unscreened = pipeline.handle_hook_call("ketamine-order-sign", hook_request(fhir_server=FHIR), kb=kb,
                                               settings=s, now=NOW, base_url="https://cds.test")  # fmt: skip

    def pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
        return [(c["source"]["topic"]["code"], c["indicator"]) for c in body["cards"]]

    assert pairs(response) == pairs(unscreened)
    assert ("hypertension-uncontrolled", "critical") in pairs(response)


@pytest.mark.parametrize(("conditions", "status"), [((), 200), ((condition("F33.2"),), 400)])
def test_a_screened_out_call_never_decodes_the_other_prefetch_members(
    kb: Any, conditions: tuple[dict[str, Any], ...], status: int
) -> None:
    """bloodPressure holds a number beyond a 64-bit float: decoding it is a 400 naming it. Screened out, it is never
    decoded (200, no cards); for a depressed patient it is read, and refused."""
    prefetch = full_prefetch()
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset",
                              "entry": [{"resource": c} for c in conditions]}  # fmt: skip
    raw = json.dumps(hook_request(prefetch=prefetch)).replace('"bloodPressure": {', '"bloodPressure": {"x": 1e400, ')
    s = settings()
    request = decode_hook_body(raw.encode(), s.max_json_depth)
    try:
        answer = pipeline.run(SCREENED, request, kb=kb, settings=s, now=NOW, base_url="https://cds.test")
    except HookError as refused:
        assert (refused.status, refused.issues[0].expression) == (status, "prefetch.bloodPressure")
    else:
        assert (status, answer.decision.response()) == (200, {"cards": []})


# --- as of an instant -------------------------------------------------------------------------------------------

INSTANT = NOW - timedelta(days=30)


def export() -> list[dict[str, Any]]:
    """A patient with 20 blood pressures before the instant (one a day) and 2 after it."""
    before = [blood_pressure(f"bp-b{n}", INSTANT - timedelta(days=n)) for n in range(1, 21)]
    after = [blood_pressure(f"bp-a{n}", INSTANT + timedelta(days=n)) for n in range(1, 3)]
    return [patient(), condition("F33.2"), *before, *after]


def bp_dates(bundle: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(e["resource"]["effectiveDateTime"]) for e in bundle["entry"]]


def test_an_export_is_cut_to_the_instant_before_its_searches_are_answered() -> None:
    """``_count=20``: asked at the instant, the EHR answered with the 20 newest readings up to then; answering first
    and filtering after would leave only 18 of them."""
    keys = SIGN.prefetch
    context = hook_request()["context"]
    then, left_out = PatientExport(export()).at(INSTANT, UTC)
    assert left_out == 2
    answered = then.prefetch(keys, context)["bloodPressure"]
    assert len(answered["entry"]) == 20 and max(bp_dates(answered)) <= INSTANT
    filtered_after = [d for d in bp_dates(PatientExport(export()).prefetch(keys, context)["bloodPressure"])
                      if d <= INSTANT]  # fmt: skip
    assert len(filtered_after) == 18


@pytest.mark.parametrize("source", ["export", "request"])
def test_the_record_is_built_as_of_the_instant_from_either_source(kb: Any, source: str) -> None:
    resources = export()
    body = hook_request()
    if source == "request":  # the request's own prefetch, answered at NOW (every reading)
        body["prefetch"] = PatientExport(resources).prefetch(SIGN.prefetch, body["context"])
    request = HookBody.parsed(body)
    origin = PatientExport(resources) if source == "export" else RequestPrefetch(request, allowed())
    gathered = gather(SIGN, request, kb=kb, settings=settings(), now=INSTANT, source=origin, as_of=INSTANT)
    assert gathered.record is not None
    assert gathered.left_out == 2
    assert gathered.record.blood_pressures and all(
        b.when is not None and b.when <= INSTANT for b in gathered.record.blood_pressures
    )
    assert not gathered.record.set_aside  # nothing from after the instant even reached the record


def test_without_an_instant_nothing_is_left_out(kb: Any) -> None:
    gathered = gather(SIGN, HookBody.parsed(hook_request()), kb=kb, settings=settings(), now=NOW,
                      source=PatientExport(export()))  # fmt: skip
    assert gathered.left_out == 0 and gathered.record is not None
    assert max(b.when for b in gathered.record.blood_pressures if b.when) > INSTANT
