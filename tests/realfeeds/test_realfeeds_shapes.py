"""Each real-feed shape of issue 14, with prefetch and without (read from a real FHIR server): the record reads it
safely or sets it aside and says so, and no safety signal vanishes (clinical-rules.md §0 and §10).

With prefetch, the prefetch is what the EHR sends: answered from the patient's bundle by the service's own
templates, then given the deviation a client adds (another patient's records, duplicates). Without prefetch,
the same patient is loaded into sekmet-fhir and the service reads it with its own queries; deviations only a
client makes (another patient in a search result) are what a real server does with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_service.config import Settings
from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.model import (
    NORMALISED_BP_DECIMALS,
    NORMALISED_BP_TEXT,
    SET_ASIDE_CONFLICT,
    SET_ASIDE_FUTURE,
    SET_ASIDE_OTHER_PATIENT,
    PatientRecord,
)
from cds_service.sandbox.requests import build_request, load_template, service_id
from tests.clock import NOW
from tests.realfeeds.fhir_server import FhirServer
from tests.realfeeds.pipeline_record import record_for
from tests.sandbox.sandbox_support import FHIR_BASE, card_pairs

LOINC, ICD, UCUM = "http://loinc.org", "http://hl7.org/fhir/sid/icd-10-cm", "http://unitsofmeasure.org"
SURVEY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}]
VITALS = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]
EXAM = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]}]
PATIENT_REF = "{patient}"  # replaced by the patient's reference when a bundle is built
CRPS = {"coding": [{"system": ICD, "code": "G90.50", "display": "Complex regional pain syndrome I, unspecified"}]}
Resource = dict[str, Any]


def day(days_ago: float, time: str = "09:00:00", zone: str = "Z") -> str:
    moment = NOW.replace(hour=0, minute=0, second=0) - timedelta(days=days_ago)
    return f"{moment.date().isoformat()}T{time}{zone}"


def bp(when: str, systolic: float, diastolic: float, rid: str | None = None) -> Resource:
    res: Resource = {
        "resourceType": "Observation",
        "status": "final",
        "category": VITALS,
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": PATIENT_REF},
        "effectiveDateTime": when,
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": _mmhg(systolic)},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": _mmhg(diastolic)},
        ],
    }
    if rid:
        res["id"] = rid
    return res


def _mmhg(value: float) -> Resource:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


def observation(code: Resource, when: str, category: list[Resource] | None = SURVEY, **value: Any) -> Resource:
    res: Resource = {"resourceType": "Observation", "status": "final", "code": code,
                     "subject": {"reference": PATIENT_REF}, "effectiveDateTime": when, **value}  # fmt: skip
    if category:
        res["category"] = category
    return res


def phq9(when: str, score: int, category: list[Resource] | None = SURVEY) -> Resource:
    return observation({"coding": [{"system": LOINC, "code": "44261-6"}]}, when, category, valueInteger=score)


def condition(code: str, display: str, subject: str = PATIENT_REF, onset_days: float = 400) -> Resource:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": ICD, "code": code, "display": display}]},
        "subject": {"reference": subject},
        "onsetDateTime": day(onset_days),
    }  # fmt: skip


BASE: list[Resource] = [
    condition("F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
    bp(day(20), 124, 78),
    observation({"coding": [{"system": LOINC, "code": "29463-7"}]}, day(10), VITALS, valueQuantity={
        "value": 70, "unit": "kg", "system": UCUM, "code": "kg"}),
    phq9(day(12), 18),
]  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """One deviation: the patient's own records, what a client adds to the prefetch, what the server holds."""

    name: str
    records: list[Resource]
    record_check: Callable[[PatientRecord], None]
    present: tuple[str, ...] = ()  # topics that must be on the cards in both modes
    absent: tuple[str, ...] = ()  # topics that must not
    prefetch_edit: Callable[[dict[str, Any], str], None] | None = None
    server_edit: Callable[[FhirServer, str], None] | None = None
    order_edit: Callable[[Resource], None] | None = None
    base: list[Resource] = field(default_factory=lambda: BASE)


def _bp_values(record: PatientRecord) -> list[tuple[float | None, float | None]]:
    return [(b.systolic, b.diastolic) for b in record.blood_pressures]


# --- the shapes --------------------------------------------------------------------------------------------


def _check_offsetless(record: PatientRecord) -> None:
    assert _bp_values(record)[0] == (172, 96) and record.skipped == ()
    assert any("without a time-zone offset" in n.what for n in record.normalised_of(kinds.BLOOD_PRESSURE))


def _check_only_offsetless(record: PatientRecord) -> None:
    assert _bp_values(record) == [(150, 95), (146, 92)]


OTHER_PATIENT = "Patient/someone-else"


def _other_in_prefetch(prefetch: dict[str, Any], _patient: str) -> None:
    prefetch["conditions"]["entry"].append({"resource": condition("F20.0", "Paranoid schizophrenia", OTHER_PATIENT)})
    prefetch["bloodPressure"]["entry"].insert(0, {"resource": bp(day(1), 190, 120) | {"id": "bp-other",
                                                  "subject": {"reference": OTHER_PATIENT}}})  # fmt: skip


def _other_on_server(server: FhirServer, _patient: str) -> None:
    other_id = str(uuid.uuid4())
    resources = [condition("F20.0", "Paranoid schizophrenia"), bp(day(1), 190, 120)]
    server.load_bundle(transaction(other_id, resources, {"resourceType": "Patient", "gender": "male"}))


def _check_other(record: PatientRecord) -> None:
    assert record.conditions_in("psychosis", active_only=False) == ()
    assert _bp_values(record) == [(124, 78)]


def _check_other_prefetch(record: PatientRecord) -> None:
    _check_other(record)
    assert {(s.kind, s.reason, s.count) for s in record.set_aside} == {
        (kinds.CONDITIONS, SET_ASIDE_OTHER_PATIENT, 1), (kinds.BLOOD_PRESSURE, SET_ASIDE_OTHER_PATIENT, 1)}


def _duplicates_in_prefetch(first: tuple[int, int], second: tuple[int, int]) -> Callable[[dict[str, Any], str], None]:
    def edit(prefetch: dict[str, Any], patient: str) -> None:
        for values in (first, second):
            copy = bp(day(1), *values, rid="bp-dup") | {"subject": {"reference": patient}}
            prefetch["bloodPressure"]["entry"].insert(0, {"resource": copy})

    return edit


def _versions_on_server(first: tuple[int, int], then: tuple[int, int]) -> Callable[[FhirServer, str], None]:
    def edit(server: FhirServer, patient: str) -> None:
        rid = f"bp-dup-{uuid.uuid4().hex[:12]}"
        for values in (first, then):  # two versions of one resource, the second the newer
            reading = bp(day(1), *values, rid=rid) | {"subject": {"reference": patient}}
            server.load_bundle({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": reading, "request": {"method": "PUT", "url": f"Observation/{rid}"}}]})  # fmt: skip

    return edit


def _check_cautious_copy(record: PatientRecord) -> None:
    assert _bp_values(record)[0] == (182, 112)


def _check_conflict_said(record: PatientRecord) -> None:
    _check_cautious_copy(record)
    (aside,) = record.set_aside_of(kinds.BLOOD_PRESSURE)
    assert (aside.reason, aside.details) == (SET_ASIDE_CONFLICT, (f"BP 122/76 mmHg dated {day(1)[:10]}",))


FUTURE = [bp(day(-10 - i), 118, 76) for i in range(25)]  # a device whose clock runs weeks ahead


def _every_reading_in_prefetch(prefetch: dict[str, Any], patient: str) -> None:
    """An EHR that sends the readings past the template's ``_count`` on one page (the server test pages)."""
    readings = [bp(day(1), 171, 104), *FUTURE]
    prefetch["bloodPressure"]["entry"] = [
        {"resource": r | {"id": f"bp-{i}", "subject": {"reference": patient}}} for i, r in enumerate(readings)
    ]


def _check_future(record: PatientRecord) -> None:
    assert _bp_values(record)[0] == (171, 104)
    (aside,) = [s for s in record.set_aside_of(kinds.BLOOD_PRESSURE) if s.reason == SET_ASIDE_FUTURE]
    assert aside.count >= 1 and aside.details[0].startswith("BP 118/76 mmHg dated 2026-12-")


def _check_future_critical(record: PatientRecord) -> None:
    """Set aside (never the latest reading), and kept with its value: the BP rule asks for it to be verified."""
    assert _bp_values(record) == [(124, 78)]
    (aside,) = record.set_aside_of(kinds.BLOOD_PRESSURE)
    assert (aside.reason, aside.details) == (SET_ASIDE_FUTURE, (f"BP 190/120 mmHg dated {day(-3)[:10]}",))


def _check_bp_text(record: PatientRecord) -> None:
    assert _bp_values(record)[0] == (160, 100)
    assert any(n.what == NORMALISED_BP_TEXT for n in record.normalised)


def _check_hcg(record: PatientRecord) -> None:
    (test,) = record.pregnancy_tests
    assert (test.iu_per_l, test.unit_unreadable, test.positive) == (2400, False, None)


# Issue 14's codes that hand-written value sets missed (recognised by rules-v2's value sets; read here as sent).
OUTSIDE_LISTS = [
    ("O99.341", "Other mental disorders complicating pregnancy, first trimester"),
    ("Z34.01", "Encounter for supervision of normal first pregnancy, first trimester"),
    ("K70.31", "Alcoholic cirrhosis of liver with ascites"),
    ("C71.9", "Malignant neoplasm of brain, unspecified"),
    ("G91.1", "Obstructive hydrocephalus"),
    ("F18.20", "Inhalant dependence, uncomplicated"),
    ("F19.20", "Ketamine use disorder, severe"),  # ICD-10-CM has no ketamine code: recognised by its name
]


def _check_outside_lists(record: PatientRecord) -> None:
    categories = {c.codes[0].code: c.categories for c in record.conditions if c.codes}
    assert "ketamine-misuse" in categories["F19.20"] and "pregnancy" in categories["O99.341"]


def _check_madrs_item(record: PatientRecord) -> None:
    assert [(s.instrument.value, s.value) for s in record.scores] == [("PHQ-9", 18)]


def _crps_reason(order: Resource) -> None:
    order["reasonCode"] = CRPS  # the CDS Hooks sandbox sends one object, not a list


def _check_decimals(record: PatientRecord) -> None:
    assert _bp_values(record)[:2] == [(168, 89), (135, 90)]
    assert any(n.what == NORMALISED_BP_DECIMALS for n in record.normalised)


def _check_phq9_other_category(record: PatientRecord) -> None:
    assert [(s.value, s.when.date().isoformat() if s.when else None) for s in record.scores] == [
        (22, day(3)[:10])]  # fmt: skip


ITEM_1 = "MADRS item 1 - apparent sadness"
MADRS_ITEM = {"coding": [{"system": "urn:oid:2.16.840.1.113883.3.9999.42", "code": "MADRS-1", "display": ITEM_1}],
              "text": ITEM_1}  # fmt: skip

SHAPES = [
    Shape("offsetless-newest-bp", [bp("2026-11-22T10:00:00", 172, 96)], _check_offsetless,
          present=("hypertension-uncontrolled",)),
    Shape("only-offsetless-bp", [bp(day(2, zone=""), 146, 92), bp("2026-11-22T10:00:00", 150, 95)],
          _check_only_offsetless, present=("hypertension-elevated",), absent=("blood-pressure-undocumented",),
          base=[r for r in BASE if r["code"]["coding"][0]["code"] != "85354-9"]),
    Shape("another-patients-records", [], _check_other, absent=("psychosis", "hypertension-uncontrolled"),
          prefetch_edit=_other_in_prefetch, server_edit=_other_on_server),
    Shape("conflicting-duplicates-high-first", [], _check_cautious_copy, present=("hypertension-uncontrolled",),
          prefetch_edit=_duplicates_in_prefetch((182, 112), (122, 76)),
          server_edit=_versions_on_server((122, 76), (182, 112))),
    Shape("conflicting-duplicates-low-first", [], _check_cautious_copy, present=("hypertension-uncontrolled",),
          prefetch_edit=_duplicates_in_prefetch((122, 76), (182, 112)),
          server_edit=_versions_on_server((122, 76), (182, 112))),
    Shape("future-readings-before-the-cap", [*FUTURE, bp(day(1), 171, 104)], _check_future,
          present=("hypertension-uncontrolled",), prefetch_edit=_every_reading_in_prefetch),
    Shape("future-critical-reading", [bp(day(-3), 190, 120)], _check_future_critical,
          present=("hypertension-elevated",), absent=("hypertension-uncontrolled",)),
    Shape("bp-as-text", [observation({"coding": [{"system": LOINC, "code": "85354-9"}]}, day(1), VITALS,
                                     valueString="160/100 mmHg")], _check_bp_text,
          present=("hypertension-uncontrolled",)),
    Shape("quantitative-hcg", [observation({"coding": [{"system": LOINC, "code": "19080-1"}]}, day(2), None,
                                           valueQuantity={"value": 2400, "unit": "mIU/mL", "system": UCUM,
                                                          "code": "m[IU]/mL"})], _check_hcg,
          present=("pregnancy",)),
    Shape("codes-outside-hand-written-lists", [condition(c, d, onset_days=30) for c, d in OUTSIDE_LISTS],
          _check_outside_lists, present=("pregnancy", "hepatic-impairment", "intracranial-pressure",
                                         "substance-use-disorder", "ketamine-misuse-history")),
    Shape("madrs-item-is-not-a-total", [observation(MADRS_ITEM, day(1), valueInteger=3)], _check_madrs_item,
          absent=("depression-severity-insufficient",)),
    Shape("sandbox-lone-reason-code", [condition("G90.50", "Complex regional pain syndrome I, unspecified")],
          lambda record: None, present=("chronic-pain-evidence",), absent=("trd-criteria-unmet",),
          order_edit=_crps_reason),
    Shape("decimal-bp", [bp(day(1), 167.676, 89.3788), bp(day(2), 135.4, 90.2965)], _check_decimals,
          present=("hypertension-uncontrolled",)),
    Shape("phq9-filed-as-exam", [phq9(day(3), 22, EXAM)], _check_phq9_other_category,
          base=[r for r in BASE if r["code"]["coding"][0]["code"] != "44261-6"]),
]  # fmt: skip
CHECK_WITH_PREFETCH = {"another-patients-records": _check_other_prefetch,
                       "conflicting-duplicates-high-first": _check_conflict_said,
                       "conflicting-duplicates-low-first": _check_conflict_said}  # fmt: skip


# --- requests, with and without prefetch ---------------------------------------------------------------------


def transaction(patient_id: str, resources: list[Resource], patient: Resource | None = None) -> dict[str, Any]:
    """A transaction Bundle of one patient: the Patient POSTed under a urn:uuid, its records referring to it."""
    full = f"urn:uuid:{patient_id}"
    person = patient or {"resourceType": "Patient", "gender": "female", "birthDate": "1981-05-02"}
    entries = [{"fullUrl": full, "resource": person, "request": {"method": "POST", "url": "Patient"}}]
    for i, res in enumerate(resources):
        copy = _with_patient(res, full)
        rid = copy.get("id")
        request = {"method": "PUT", "url": f"{copy['resourceType']}/{rid}"} if rid else {
            "method": "POST", "url": copy["resourceType"]}  # fmt: skip
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.UUID(patient_id), str(i))}", "resource": copy,
                        "request": request})  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _with_patient(res: Resource, reference: str) -> Resource:
    copy = dict(res)
    if copy.get("subject") == {"reference": PATIENT_REF}:
        copy["subject"] = {"reference": reference}
    return copy


def request_for(shape: Shape, hook: str, *, server: FhirServer | None) -> dict[str, Any]:
    """The order-sign/select request for the shape's patient: with prefetch (``server`` None) or without."""
    patient_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"real-feeds/{shape.name}/{hook}/{server is not None}"))
    records = [*shape.base, *shape.records]
    if server is not None:  # ids of PUT records must be unique on the shared server
        records = [r | {"id": f"{r['id']}-{patient_id[:8]}"} if "id" in r else r for r in records]
    bundle = transaction(patient_id, records)
    body = build_request(
        bundle, load_template("iv-ketamine-standard"), hook, anchor=NOW.date(), prefetch=server is None,
        fhir_server=server.base_url if server else FHIR_BASE, name=f"{shape.name}-{patient_id}",
    )  # fmt: skip
    body.pop("extension", None)
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    if shape.order_edit:
        shape.order_edit(order)
    if server is None:
        if shape.prefetch_edit:
            shape.prefetch_edit(body["prefetch"], f"Patient/{patient_id}")
        return body
    locations = server.load_bundle(bundle)
    assigned = next(loc for loc in locations if "Patient/" in loc).split("Patient/")[1].split("/")[0]
    body["context"]["patientId"] = assigned
    order["subject"] = {"reference": f"Patient/{assigned}"}
    if shape.server_edit:
        shape.server_edit(server, f"Patient/{assigned}")
    return body


def record_of(body: dict[str, Any], kb: Knowledge, server: FhirServer) -> PatientRecord:
    """The record the pipeline builds for ``body`` (its prefetch, or what it reads from the server)."""
    settings = Settings(auth_enabled=False, fhir_server_allowlist=(server.base_url, FHIR_BASE))
    record, resolution = record_for(body, kb, settings)
    assert resolution.gaps == () and resolution.unobtainable_required == (), resolution.gaps
    return record


@pytest.mark.parametrize("mode", ["prefetch", "fhir-server"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_shape_is_read_safely_and_no_signal_vanishes(
    client: FlaskClient, fhir_server: FhirServer, kb: Knowledge, shape: Shape, mode: str
) -> None:
    body = request_for(shape, "order-sign", server=fhir_server if mode == "fhir-server" else None)
    record = record_of(body, kb, fhir_server)
    check = CHECK_WITH_PREFETCH.get(shape.name, shape.record_check) if mode == "prefetch" else shape.record_check
    check(record)
    resp = client.post(f"/cds-services/{service_id('order-sign')}", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:1000]
    topics = {topic for topic, _indicator in card_pairs(resp.get_json())}
    assert set(shape.present) <= topics, topics
    assert not set(shape.absent) & topics, topics


def test_the_sandbox_order_select_reads_a_lone_reason_code_too(client: FlaskClient) -> None:
    (shape,) = [s for s in SHAPES if s.name == "sandbox-lone-reason-code"]
    body = request_for(shape, "order-select", server=None)
    topics = {topic for topic, _ in card_pairs(client.post(f"/cds-services/{service_id('order-select')}",
                                                           json=body).get_json())}  # fmt: skip
    assert "chronic-pain-evidence" in topics and "trd-criteria-unmet" not in topics


def test_the_summary_says_what_was_set_aside_on_the_lines_it_would_have_changed(client: FlaskClient) -> None:
    """Another patient's schizophrenia and 190/120 in the prefetch: the psychosis and blood-pressure lines still
    say "not found" and "124/78", each with how many records were set aside and why; nothing of the other
    patient is shown (clinical-rules.md §10)."""
    (shape,) = [s for s in SHAPES if s.name == "another-patients-records"]
    cards = client.post(f"/cds-services/{service_id('order-sign')}",
                        json=request_for(shape, "order-sign", server=None)).get_json()["cards"]  # fmt: skip
    (summary,) = [c for c in cards if c["source"]["topic"]["code"] == "eligibility-summary"]
    lines = summary["detail"].splitlines()
    assert ("- **Psychosis**: not found in the records that could be read (1 condition record belongs to another "
            "patient)") in lines  # fmt: skip
    (bp_line,) = [line for line in lines if line.startswith("- **Blood pressure**")]
    assert bp_line.startswith("- **Blood pressure**: 124/78 on ")
    assert "1 blood pressure record belongs to another patient" in bp_line
    shown = " ".join(f"{c['summary']} {c['detail']}" for c in cards)
    assert "190/120" not in shown and "schizophrenia" not in shown.lower()
