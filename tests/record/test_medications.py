"""Medication history: product codes, references, MedicationRequest-only histories, doses, merged periods."""

from __future__ import annotations

from datetime import UTC, datetime

from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record
from cds_service.record.model import DataGap, PatientRecord, Recognition
from tests.record.record_samples import NDC, RX, SUBJECT, dosage, request, rx_concept, statement

AVAILABLE = frozenset({kinds.PATIENT, kinds.MEDICATIONS})
SERTRALINE_50 = {"medicationCodeableConcept": rx_concept("312941", "sertraline 50 MG Oral Tablet")}
SERTRALINE_100 = {"medicationCodeableConcept": rx_concept("312938", "sertraline 100 MG Oral Tablet")}


def _record(kb: Knowledge, *resources: dict) -> PatientRecord:
    return build_record(list(resources), kb, available=AVAILABLE)


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_product_code_tablets_times_strength(kb: Knowledge) -> None:
    record = _record(
        kb,
        statement("s1", SERTRALINE_50, start="2024-01-01", end="2024-03-01", dosages=[dosage(2, "{tbl}")]),
    )
    (use,) = record.medication_uses
    assert use.ingredient == "sertraline" and use.recognition is Recognition.CODE
    assert use.daily_dose_mg == 100
    assert (use.start, use.end, use.ongoing) == (_day("2024-01-01"), _day("2024-03-01"), False)
    (period,) = record.exposures
    assert period.drug_class == "SSRI" and period.roles == {"antidepressant"}


def test_dose_in_mg_times_frequency_and_summed_dosages(kb: Knowledge) -> None:
    twice_daily = dosage(37.5, "mg", frequency=2)
    morning_and_evening = [dosage(50, "mg"), dosage(25, "mg")]
    record = _record(
        kb,
        statement("v", {"medicationCodeableConcept": rx_concept("313584", "venlafaxine 37.5 MG Oral Tablet")},
                  start="2024-01-01", end="2024-02-01", dosages=[twice_daily]),
        statement("q", SERTRALINE_50, start="2023-01-01", end="2023-02-01", dosages=morning_and_evening),
        statement("w", SERTRALINE_50, start="2022-01-01", end="2022-02-01",
                  dosages=[dosage(0.2, "g", frequency=1, period=2)]),  # 200 mg every other day
    )  # fmt: skip
    doses = {u.resource_id: u.daily_dose_mg for u in record.medication_uses}
    assert doses == {"v": 75, "q": 75, "w": 100}


def test_unknown_dose_and_assumed_frequency_are_flagged(kb: Knowledge) -> None:
    no_timing = {"doseAndRate": [{"doseQuantity": {"value": 100, "unit": "mg"}}]}
    record = _record(
        kb,
        statement("a", SERTRALINE_50, start="2024-01-01", end="2024-03-01", dosages=[{"text": "one daily"}]),
        statement("b", SERTRALINE_50, start="2023-01-01", end="2023-03-01", dosages=[no_timing]),
        statement("c", SERTRALINE_50, start="2022-01-01", end="2022-03-01", dosages=[dosage(5, "mL")]),
    )
    by_id = {u.resource_id: u for u in record.medication_uses}
    assert by_id["a"].daily_dose_mg is None and "dose-unknown" in by_id["a"].flags
    assert by_id["b"].daily_dose_mg == 100 and "frequency-assumed-daily" in by_id["b"].flags
    assert by_id["c"].daily_dose_mg is None and "dose-unknown" in by_id["c"].flags


def test_medication_reference_contained_and_bundled(kb: Knowledge) -> None:
    contained = statement(
        "s1",
        {"medicationReference": {"reference": "#m1"}},
        start="2024-01-01",
        end="2024-03-01",
        contained=[{"resourceType": "Medication", "id": "m1", "code": rx_concept("349332", "escitalopram 10 MG")}],
    )
    bundled = request("r1", {"medicationReference": {"reference": "Medication/med-7"}}, authored="2023-05-01",
                      supply=(30, "d"))  # fmt: skip
    medication = {"resourceType": "Medication", "id": "med-7", "code": rx_concept("596930", "duloxetine 30 MG")}
    record = _record(kb, contained, bundled, medication)
    assert {u.resource_id: u.ingredient for u in record.medication_uses} == {"s1": "escitalopram", "r1": "duloxetine"}
    assert record.data_gaps == ()


def test_unresolved_reference_is_a_data_gap(kb: Knowledge) -> None:
    record = _record(
        kb, request("r1", {"medicationReference": {"reference": "Medication/gone"}}, authored="2024-01-01")
    )
    assert record.medication_uses == ()
    assert record.data_gaps == (
        DataGap("medications", "1 medication reference could not be resolved to a Medication resource"),
    )


def test_request_only_history_supply_and_refills(kb: Knowledge) -> None:
    record = _record(
        kb,
        request("r1", SERTRALINE_100, authored="2024-01-10", supply=(30, "d"), repeats=2,
                dosages=[dosage(1, "TAB")]),
        request("r2", SERTRALINE_100, authored="2023-01-10", supply=(4, "wk")),
        request("r3", SERTRALINE_100, authored="2022-01-10", supply=(30, "days")),  # non-UCUM "days", read leniently
    )  # fmt: skip
    by_id = {u.resource_id: u for u in record.medication_uses}
    assert by_id["r1"].end == _day("2024-04-09")  # 3 fills x 30 days
    assert by_id["r1"].daily_dose_mg == 100
    assert by_id["r2"].end == _day("2023-02-07")
    assert by_id["r3"].end == _day("2022-02-09")
    assert all("duration-unknown" not in u.flags for u in record.medication_uses)


def test_request_validity_period_and_timing_bounds(kb: Knowledge) -> None:
    bounds = {"timing": {"repeat": {"boundsPeriod": {"start": "2023-01-01T00:00:00Z", "end": "2024-09-17T00:00:00Z"}}}}
    record = _record(
        kb,
        request("v", SERTRALINE_100, authored="2024-01-01", validity=("2024-01-01", "2024-06-30")),
        request("b", {"medicationCodeableConcept": rx_concept("1099316", "desipramine 75 MG Oral Tablet")},
                status="active", dosages=[bounds]),
    )  # fmt: skip
    by_id = {u.resource_id: u for u in record.medication_uses}
    assert (by_id["v"].start, by_id["v"].end) == (_day("2024-01-01"), _day("2024-06-30"))
    assert (by_id["b"].start, by_id["b"].end) == (_day("2023-01-01"), _day("2024-09-17"))
    assert by_id["b"].daily_dose_mg is None and "dose-unknown" in by_id["b"].flags


def test_request_statuses_and_intents(kb: Knowledge) -> None:
    record = _record(
        kb,
        request("draft", SERTRALINE_100, status="draft", authored="2024-01-01"),
        request("eie", SERTRALINE_100, status="entered-in-error", authored="2024-01-01"),
        request("plan", SERTRALINE_100, intent="proposal", authored="2024-01-01"),
        request("open", SERTRALINE_100, status="active", authored="2024-01-01"),
        request("stopped", SERTRALINE_100, status="stopped", authored="2023-01-01"),
    )
    by_id = {u.resource_id: u for u in record.medication_uses}
    assert set(by_id) == {"open", "stopped"}
    assert by_id["open"].ongoing and by_id["open"].end is None
    assert "duration-unknown" in by_id["open"].flags  # active, but nothing says for how long
    assert not by_id["stopped"].ongoing and "duration-unknown" in by_id["stopped"].flags


def test_statement_active_is_ongoing_and_statuses(kb: Knowledge) -> None:
    record = _record(
        kb,
        statement("a", SERTRALINE_50, status="active", start="2025-01-01"),
        statement("nt", SERTRALINE_50, status="not-taken", start="2025-01-01"),
        statement("eie", SERTRALINE_50, status="entered-in-error", start="2025-01-01"),
        statement("dt", SERTRALINE_50, status="completed", when="2020-05-01"),
        statement("nodate", SERTRALINE_50, status="completed"),
    )
    by_id = {u.resource_id: u for u in record.medication_uses}
    assert set(by_id) == {"a", "dt", "nodate"}
    assert by_id["a"].ongoing and not by_id["a"].flags.count("duration-unknown")
    assert "duration-unknown" in by_id["dt"].flags
    assert {"start-unknown", "duration-unknown"} <= set(by_id["nodate"].flags)


def test_overlapping_and_touching_uses_merge_per_ingredient(kb: Knowledge) -> None:
    record = _record(
        kb,
        statement("s1", SERTRALINE_50, start="2024-01-01", end="2024-02-15", dosages=[dosage(50, "mg")]),
        statement("s2", SERTRALINE_100, start="2024-02-01", end="2024-03-31", dosages=[dosage(100, "mg")]),
        request("r1", SERTRALINE_100, authored="2024-04-05", supply=(30, "d")),  # 5-day gap: still continuous
        request("r2", SERTRALINE_100, authored="2024-08-01", supply=(30, "d")),  # months later: a new period
        statement("f1", {"medicationCodeableConcept": rx_concept("310385", "fluoxetine 20 MG Oral Capsule")},
                  start="2024-02-01", end="2024-03-01"),
    )  # fmt: skip
    sertraline = [e for e in record.exposures if e.ingredient == "sertraline"]
    assert [(e.start, e.end) for e in sertraline] == [
        (_day("2024-08-01"), _day("2024-08-31")),
        (_day("2024-01-01"), _day("2024-05-05")),
    ]
    assert [u.resource_id for u in sertraline[1].uses] == ["r1", "s2", "s1"]
    assert [e.ingredient for e in record.exposures].count("fluoxetine") == 1


def test_flags_survive_the_merge(kb: Knowledge) -> None:
    record = _record(
        kb,
        statement("s1", SERTRALINE_50, start="2024-01-01", end="2024-02-15"),
        request("r1", SERTRALINE_100, status="completed", authored="2024-02-10"),
    )
    (period,) = record.exposures
    assert "duration-unknown" in period.flags and "dose-unknown" in period.flags
    assert period.end == _day("2024-02-15")


def test_undated_uses_form_their_own_period(kb: Knowledge) -> None:
    record = _record(
        kb,
        statement("s1", SERTRALINE_50, start="2024-01-01", end="2024-02-15"),
        statement("s2", SERTRALINE_50, status="completed"),
    )
    assert [(e.start is None, len(e.uses)) for e in record.exposures] == [(False, 1), (True, 1)]


def test_name_fallback_with_strength_from_the_display(kb: Knowledge) -> None:
    unknown_scd = {"medicationCodeableConcept": {"coding": [{"system": RX, "code": "999999", "display": "Zoloft"}],
                                                 "text": "sertraline 100 mg tablet"}}  # fmt: skip
    record = _record(kb, statement("s", unknown_scd, start="2024-01-01", end="2024-03-01", dosages=[dosage(2, "tab")]))
    (use,) = record.medication_uses
    assert use.recognition is Recognition.NAME and use.daily_dose_mg == 200
    assert "recognised-by-name" in use.flags
    assert record.exposures[0].recognition is Recognition.NAME


def test_combination_and_mood_stabilisers(kb: Knowledge) -> None:
    symbyax = {"medicationCodeableConcept": rx_concept("403970", "fluoxetine 25 MG / olanzapine 12 MG Oral Capsule")}
    lithium = {"medicationCodeableConcept": {"text": "Lithium carbonate 300 mg capsule"}}
    depakote = {
        "medicationCodeableConcept": rx_concept("1099870", "divalproex sodium 500 MG Delayed Release Oral Tablet")
    }
    record = _record(
        kb,
        statement("c", symbyax, start="2024-01-01", status="active", dosages=[dosage(1, "{capsule}")]),
        statement("li", lithium, start="2024-01-01", status="active"),
        statement("vpa", depakote, start="2024-01-01", status="active"),
    )
    doses = {(u.resource_id, u.ingredient): u.daily_dose_mg for u in record.medication_uses}
    assert doses[("c", "fluoxetine")] == 25 and doses[("c", "olanzapine")] == 12
    assert {e.ingredient for e in record.exposures_with_role("mood-stabilizer-standard")} == {"lithium", "valproate"}
    assert {e.ingredient for e in record.exposures_with_role("mood-stabilizer-other")} == {"olanzapine"}


def test_spravato_ndc_and_ketamine_administrations(kb: Knowledge) -> None:
    def administration(rid: str, concept: dict, status: str = "completed", when: str = "2026-11-01T10:00:00Z") -> dict:
        return {"resourceType": "MedicationAdministration", "id": rid, "status": status, "subject": SUBJECT,
                "medicationCodeableConcept": concept, "effectiveDateTime": when}  # fmt: skip

    spravato = {"coding": [{"system": NDC, "code": "50458002803"}], "text": "SPRAVATO 84 mg kit"}
    ketamine = {"text": "ketamine 50 mg/mL in NS 100 mL IV"}
    record = _record(
        kb,
        administration("a1", spravato),
        administration("a2", ketamine, when="2026-11-10T10:00:00Z"),
        administration("a3", ketamine, status="in-progress"),
        administration("a4", rx_concept("312941", "sertraline 50 MG Oral Tablet")),
    )
    assert [(a.resource_id, a.ingredient) for a in record.administrations] == [("a2", "ketamine"), ("a1", "esketamine")]


def test_medications_outside_the_catalogue_are_ignored_without_validation(kb: Knowledge) -> None:
    metformin = {"medicationCodeableConcept": {"text": "metformin 500 mg"}}
    record = _record(kb, statement("m", metformin, start="not a date"))
    assert record.medication_uses == () and record.skipped == ()


def test_invalid_medication_statement_is_skipped(kb: Knowledge) -> None:
    bad = statement("bad", SERTRALINE_50, start="2024-02-30")  # no such day
    del bad["subject"]
    record = _record(kb, bad, statement("good", SERTRALINE_50, start="2024-01-01"))
    assert [u.resource_id for u in record.medication_uses] == ["good"]
    assert [s.resource_id for s in record.skipped] == ["bad"]
    assert "2024-02-30" not in record.skipped[0].problem


def test_repeated_drugs_and_dosages_give_the_facts_of_each_resource(kb: Knowledge) -> None:
    """The build resolves each distinct drug and dosage once: every refill still gets its own facts."""
    tablets = [dosage(2, "{tbl}")]
    record = _record(
        kb,
        request("r50", SERTRALINE_50, authored="2024-01-01", supply=(30, "d"), dosages=tablets),
        request("r100", SERTRALINE_100, authored="2024-02-01", supply=(30, "d"), dosages=[dosage(2, "{tbl}")]),
        request("r50b", SERTRALINE_50, authored="2024-03-01", supply=(30, "d"), dosages=[dosage(2, "{tbl}")]),
        statement("s100", SERTRALINE_100, start="2024-04-01", end="2024-05-01", dosages=[dosage(2, "{tbl}")]),
        statement("s-none", SERTRALINE_100, start="2024-06-01", end="2024-07-01", dosages=[{"text": "two"}]),
        request("gone-1", {"medicationReference": {"reference": "Medication/gone"}}, authored="2024-01-01"),
        request("gone-2", {"medicationReference": {"reference": "Medication/gone"}}, authored="2024-02-01"),
    )
    doses = {u.resource_id: u.daily_dose_mg for u in record.medication_uses}
    # the same dosage is 100 mg/day of the 50 mg tablet and 200 mg/day of the 100 mg tablet
    assert doses == {"r50": 100, "r100": 200, "r50b": 100, "s100": 200, "s-none": None}
    assert "dose-unknown" in next(u for u in record.medication_uses if u.resource_id == "s-none").flags
    assert record.data_gaps == (  # each unresolved reference counts, not each distinct one
        DataGap("medications", "2 medication references could not be resolved to a Medication resource"),
    )


def test_a_bundled_medication_is_validated_once_and_an_invalid_one_resolves_nothing(kb: Knowledge) -> None:
    concept = rx_concept("312941", "sertraline") | {"text": ["sertraline"]}  # text must be a string
    invalid = {"resourceType": "Medication", "id": "bad", "code": concept}
    record = _record(
        kb,
        invalid,
        request("r1", {"medicationReference": {"reference": "Medication/bad"}}, authored="2024-01-01"),
        request("r2", {"medicationReference": {"reference": "Medication/bad"}}, authored="2024-02-01"),
    )
    assert record.medication_uses == ()
    assert [(s.resource_type, s.resource_id) for s in record.skipped] == [("Medication", "bad")]
    assert record.data_gaps == (
        DataGap("medications", "2 medication references could not be resolved to a Medication resource"),
    )
