"""Reading draft MedicationRequests: recognition, every dose/rate/duration/frequency form, route, reasons."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.order.model import DoseUnit, Drug, OrderStage, Route
from cds_service.order.parser import NotAKetamineOrder, parse_order
from cds_service.order.recognition import find_ketamine_requests
from cds_service.record.model import Recognition

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
IV = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]}
NASAL = {"coding": [{"system": SNOMED, "code": "46713006", "display": "Nasal route"}]}


def mg(value: float, code: str = "mg") -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def ketamine_request(
    rid: str = "ket-1",
    *,
    dose: dict[str, Any] | None = None,
    rate: dict[str, Any] | None = None,
    repeat: dict[str, Any] | None = None,
    route: dict[str, Any] | None = IV,
    medication: dict[str, Any] | None = None,
) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    if route is not None:
        dosage["route"] = route
    dar: dict[str, Any] = {}
    if dose is not None:
        dar["doseQuantity"] = dose
    if rate is not None:
        dar["rateQuantity"] = rate
    if dar:
        dosage["doseAndRate"] = [dar]
    if repeat is not None:
        dosage["timing"] = {"repeat": repeat}
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [dosage] if dosage else [],
    }
    res.update(medication or {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6130"}]}})
    return res


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def parse(res: dict[str, Any], kb: Any, stage: OrderStage = OrderStage.SIGN, draft: dict | None = None):  # type: ignore[no-untyped-def]
    return parse_order(res, draft or bundle(res), kb, stage)


SERTRALINE = {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "312941"}], "text": "sertraline"}}


# --- recognition ------------------------------------------------------------------------------------


class TestFind:
    def test_non_ketamine_orders_are_ignored(self, catalog_kb):  # type: ignore[no-untyped-def]
        draft = bundle(ketamine_request("s1", medication=SERTRALINE), {"resourceType": "ServiceRequest", "id": "x"})
        assert find_ketamine_requests(draft, None, catalog_kb) == []

    def test_ingredient_code_is_found(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request()
        assert find_ketamine_requests(bundle(res), None, catalog_kb) == [res]

    @pytest.mark.parametrize("code", ["2201623", "2201625", "2119365"])
    def test_esketamine_product_and_ingredient_codes(self, catalog_kb, code):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]}})
        assert find_ketamine_requests(bundle(res), None, catalog_kb) == [res]
        assert parse(res, catalog_kb).drug is Drug.ESKETAMINE

    @pytest.mark.parametrize("ndc", ["50458-028-02", "50458002802", "50458-0028-02"])
    def test_ndc_kit_hyphenated_or_eleven_digits(self, catalog_kb, ndc):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationCodeableConcept": {"coding": [{"system": NDC, "code": ndc}]}})
        order = parse(res, catalog_kb)
        assert (order.drug, order.recognition) == (Drug.ESKETAMINE, Recognition.CODE)

    def test_name_only_recognition(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationCodeableConcept": {"text": "Ketamine HCl 50 mg/mL injection"}})
        order = parse(res, catalog_kb)
        assert (order.drug, order.recognition) == (Drug.KETAMINE, Recognition.NAME)

    def test_esketamine_name_is_not_ketamine(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(
            medication={"medicationCodeableConcept": {"coding": [{"system": "urn:local", "code": "X",
                                                                   "display": "Esketamine 28 mg device"}]}}
        )
        assert parse(res, catalog_kb).drug is Drug.ESKETAMINE

    def test_ketamine_as_part_of_another_word_is_not_matched(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationCodeableConcept": {"text": "norketamine assay"}})
        assert find_ketamine_requests(bundle(res), None, catalog_kb) == []
        with pytest.raises(NotAKetamineOrder):
            parse(res, catalog_kb)

    def test_contained_medication_reference(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationReference": {"reference": "#med"}})
        res["contained"] = [{"resourceType": "Medication", "id": "med",
                             "code": {"coding": [{"system": RXNORM, "code": "6130"}]}}]
        assert find_ketamine_requests(bundle(res), None, catalog_kb) == [res]
        assert parse(res, catalog_kb).recognition is Recognition.CODE

    @pytest.mark.parametrize("ref", ["Medication/m1", "urn:uuid:aaaa-1"])
    def test_medication_in_bundle(self, catalog_kb, ref):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationReference": {"reference": ref}})
        med = {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": RXNORM, "code": "2201625"}]}}
        draft = {"resourceType": "Bundle", "type": "collection",
                 "entry": [{"resource": res}, {"fullUrl": "urn:uuid:aaaa-1", "resource": med}]}
        assert find_ketamine_requests(draft, None, catalog_kb) == [res]
        assert parse(res, catalog_kb, draft=draft).drug is Drug.ESKETAMINE

    def test_compounded_medication_by_ingredient(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationReference": {"reference": "#mix"}})
        res["contained"] = [{"resourceType": "Medication", "id": "mix", "code": {"text": "IV admixture"},
                             "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "6130"}]}}]}]
        assert parse(res, catalog_kb).drug is Drug.KETAMINE

    def test_unresolvable_reference_is_not_an_error(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationReference": {"reference": "Medication/elsewhere"}})
        assert find_ketamine_requests(bundle(res), None, catalog_kb) == []

    def test_unresolvable_reference_with_display_is_recognised_by_name(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(medication={"medicationReference": {"reference": "Medication/x", "display": "Spravato"}})
        order = parse(res, catalog_kb)
        assert (order.drug, order.recognition) == (Drug.ESKETAMINE, Recognition.NAME)

    def test_selections_limit_the_scan(self, catalog_kb):  # type: ignore[no-untyped-def]
        a, b = ketamine_request("a"), ketamine_request("b")
        draft = bundle(a, b)
        assert find_ketamine_requests(draft, ["MedicationRequest/b"], catalog_kb) == [b]
        assert find_ketamine_requests(draft, ["MedicationRequest/zzz"], catalog_kb) == []
        assert find_ketamine_requests(draft, [], catalog_kb) == []

    def test_selected_draft_without_medication_yet(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = {"resourceType": "MedicationRequest", "id": "new", "status": "draft", "intent": "order",
               "subject": {"reference": "Patient/p1"}}
        assert find_ketamine_requests(bundle(res), ["MedicationRequest/new"], catalog_kb) == []

    @pytest.mark.parametrize(
        "draft",
        [{}, {"entry": None}, {"entry": "x"}, {"entry": [None, 3, {"resource": "x"}, {}]}, [], "bundle"],
    )
    def test_malformed_bundles_do_not_raise(self, catalog_kb, draft):  # type: ignore[no-untyped-def]
        assert find_ketamine_requests(draft, None, catalog_kb) == []

    def test_index_is_cached_per_kb(self, catalog_kb):  # type: ignore[no-untyped-def]
        from cds_service.order import recognition

        recognition.ketamine_index(catalog_kb)
        assert recognition.ketamine_index(catalog_kb) is recognition.ketamine_index(catalog_kb)


# --- dose, rate, duration, frequency ----------------------------------------------------------------


class TestDose:
    def test_mg(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35)), catalog_kb)
        assert order.dose is not None
        assert (order.dose.value, order.dose.unit, order.dose.as_written) == (35, DoseUnit.MG, "35 mg")
        assert order.problems == ()

    def test_mg_per_kg(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(0.5, "mg/kg")), catalog_kb)
        assert order.dose is not None and (order.dose.value, order.dose.unit) == (0.5, DoseUnit.MG_PER_KG)

    @pytest.mark.parametrize(("value", "code", "mg_value"), [(35000, "ug", 35.0), (0.035, "g", 35.0)])
    def test_other_mass_units(self, catalog_kb, value, code, mg_value):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(value, code)), catalog_kb)
        assert order.dose is not None and order.dose.value == pytest.approx(mg_value)
        assert order.problems == ()

    def test_ug_per_kg(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(500, "ug/kg")), catalog_kb)
        assert order.dose is not None and order.dose.unit is DoseUnit.MG_PER_KG
        assert order.dose.value == pytest.approx(0.5)

    def test_mcg_is_read_leniently_with_a_note(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35000, "mcg")), catalog_kb)
        assert order.dose is not None and order.dose.value == pytest.approx(35)
        assert any("'mcg' is not UCUM" in p for p in order.problems)

    @pytest.mark.parametrize("code", ["ML", "MG", "tab", "{dose}"])
    def test_unknown_or_trap_units_are_not_guessed(self, catalog_kb, code):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35, code)), catalog_kb)
        assert order.dose is None
        assert any(f"'{code}'" in p for p in order.problems)

    def test_unit_text_without_code_is_read_case_insensitively(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose={"value": 35, "unit": "MG"}), catalog_kb)
        assert order.dose is not None and order.dose.value == 35

    def test_ml_without_concentration_is_a_problem(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(0.7, "mL")), catalog_kb)
        assert order.dose is None
        assert any("no concentration" in p for p in order.problems)

    def test_ml_with_medication_strength_is_converted(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(dose=mg(0.7, "mL"), medication={"medicationReference": {"reference": "#k"}})
        res["contained"] = [{
            "resourceType": "Medication", "id": "k", "code": {"coding": [{"system": RXNORM, "code": "6130"}]},
            "ingredient": [{"itemCodeableConcept": {"text": "ketamine"},
                            "strength": {"numerator": mg(50), "denominator": mg(1, "mL")}}],
        }]
        order = parse(res, catalog_kb)
        assert order.dose is not None and order.dose.value == pytest.approx(35)
        assert "50 mg/mL" in order.dose.as_written

    @pytest.mark.parametrize("value", [None, "35", True, 0, -5])
    def test_bad_values(self, catalog_kb, value):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose={"value": value, "system": UCUM, "code": "mg"}), catalog_kb)
        assert order.dose is None and order.problems

    def test_dose_range_is_not_guessed(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request()
        res["dosageInstruction"][0]["doseAndRate"] = [{"doseRange": {"low": mg(20), "high": mg(40)}}]
        order = parse(res, catalog_kb)
        assert order.dose is None and any("range" in p for p in order.problems)

    def test_no_dose_is_not_a_problem_by_itself(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(), catalog_kb, OrderStage.SELECT)
        assert order.dose is None and order.problems == () and order.stage is OrderStage.SELECT


class TestRateDurationFrequency:
    def test_duration_from_timing(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), repeat={"duration": 40, "durationUnit": "min"}), catalog_kb)
        assert order.duration_minutes == 40

    def test_duration_in_hours(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), repeat={"duration": 1.5, "durationUnit": "h"}), catalog_kb)
        assert order.duration_minutes == pytest.approx(90)

    def test_hr_duration_is_lenient_with_note(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), repeat={"duration": 1, "durationUnit": "hr"}), catalog_kb)
        assert order.duration_minutes == 60 and any("'hr'" in p for p in order.problems)

    def test_bad_duration_unit(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), repeat={"duration": 40, "durationUnit": "fortnight"}), catalog_kb)
        assert order.duration_minutes is None and any("duration" in p for p in order.problems)

    @pytest.mark.parametrize(
        ("rate", "per_minute", "weight_based"),
        [(mg(52.5, "mg/h"), 0.875, False), (mg(0.875, "mg/min"), 0.875, False),
         (mg(0.75, "mg/kg/h"), 0.0125, True), (mg(12.5, "ug/kg/min"), 0.0125, True)],
    )
    def test_rate_units_normalised_per_minute(self, catalog_kb, rate, per_minute, weight_based):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(rate=rate), catalog_kb)
        assert order.rate is not None
        assert order.rate.per_minute == pytest.approx(per_minute)
        assert order.rate.weight_based is weight_based

    def test_duration_derived_from_dose_and_rate(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), rate=mg(52.5, "mg/h")), catalog_kb)
        assert order.duration_minutes == pytest.approx(40)

    def test_weight_based_duration_derived(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(0.5, "mg/kg"), rate=mg(0.75, "mg/kg/h")), catalog_kb)
        assert order.duration_minutes == pytest.approx(40)

    def test_mixed_basis_duration_left_to_the_rules(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), rate=mg(0.75, "mg/kg/h")), catalog_kb)
        assert order.duration_minutes is None and order.rate is not None

    def test_dose_derived_from_rate_and_duration(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(rate=mg(0.35, "mg/kg/h"), repeat={"duration": 4, "durationUnit": "h"}),
                      catalog_kb)
        assert order.dose is not None and order.dose.unit is DoseUnit.MG_PER_KG
        assert order.dose.value == pytest.approx(1.4)

    def test_rate_ratio(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(dose=mg(35))
        res["dosageInstruction"][0]["doseAndRate"][0]["rateRatio"] = {
            "numerator": mg(35), "denominator": {"value": 40, "system": UCUM, "code": "min"}}
        order = parse(res, catalog_kb)
        assert order.rate is not None and order.rate.per_minute == pytest.approx(0.875)
        assert order.duration_minutes == pytest.approx(40)

    def test_volume_rate_without_concentration_is_a_problem(self, catalog_kb):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), rate=mg(50, "mL/h")), catalog_kb)
        assert order.rate is None and any("volume rate" in p for p in order.problems)

    @pytest.mark.parametrize(
        ("repeat", "per_week"),
        [({"frequency": 2, "period": 1, "periodUnit": "wk"}, 2), ({"frequency": 1, "period": 1, "periodUnit": "d"}, 7),
         ({"period": 2, "periodUnit": "d"}, 3.5),
         ({"frequency": 3, "frequencyMax": 4, "period": 1, "periodUnit": "wk"}, 4),
         ({"dayOfWeek": ["mon", "thu"]}, 2), ({"frequency": 1, "period": 5, "periodUnit": "d"}, 1.4)],
    )
    def test_frequency_per_week(self, catalog_kb, repeat, per_week):  # type: ignore[no-untyped-def]
        order = parse(ketamine_request(dose=mg(35), repeat=repeat), catalog_kb)
        assert order.frequency_per_week == pytest.approx(per_week)

    def test_timing_code_only_is_reported(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(dose=mg(35))
        res["dosageInstruction"][0]["timing"] = {"code": {"text": "twice weekly"}}
        order = parse(res, catalog_kb)
        assert order.frequency_per_week is None and any("twice weekly" in p for p in order.problems)

    def test_several_dosage_instructions_are_flagged(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request(dose=mg(35))
        res["dosageInstruction"].append(copy.deepcopy(res["dosageInstruction"][0]))
        assert any("first of 2" in p for p in parse(res, catalog_kb).problems)


# --- route and reasons ------------------------------------------------------------------------------


class TestRouteAndReasons:
    @pytest.mark.parametrize(
        ("route", "expected"),
        [(IV, Route.INTRAVENOUS), (NASAL, Route.INTRANASAL), (None, Route.UNSPECIFIED),
         ({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration", "code": "IVINJ"}]},
          Route.INTRAVENOUS),
         ({"coding": [{"system": SNOMED, "code": "78421000"}]}, Route.OTHER),
         ({"text": "IV infusion"}, Route.INTRAVENOUS), ({"text": "Intranasal"}, Route.INTRANASAL),
         ({"coding": [{"system": "urn:local", "code": "7", "display": "Intravenous"}]}, Route.INTRAVENOUS)],
    )
    def test_routes(self, catalog_kb, route, expected):  # type: ignore[no-untyped-def]
        assert parse(ketamine_request(route=route), catalog_kb).route is expected

    def test_nasal_inhalation_prongs_is_not_intranasal(self, catalog_kb):  # type: ignore[no-untyped-def]
        route = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
                             "code": "NASINHLC", "display": "Inhalation, nasal"}]}
        order = parse(ketamine_request(route=route), catalog_kb)
        assert order.route is Route.UNSPECIFIED
        assert any("not recognised" in p for p in order.problems)

    def test_reasons(self, catalog_kb):  # type: ignore[no-untyped-def]
        res = ketamine_request()
        res["reasonCode"] = [{"coding": [{"system": SNOMED, "code": "47505003", "display": "PTSD"}], "text": "PTSD"}]
        res["reasonReference"] = [{"reference": "Condition/c9", "display": "Chronic pain"}, {"reference": "#c1"}]
        res["contained"] = [{"resourceType": "Condition", "id": "c1",
                             "code": {"coding": [{"system": SNOMED, "code": "6471006"}]}}]
        order = parse(res, catalog_kb)
        assert [c.code for c in order.reason_codes] == ["47505003", "6471006"]
        assert order.reason_text == "PTSD; Chronic pain"
        assert order.reason_references == ("Condition/c9",)
        assert order.reference == "MedicationRequest/ket-1"
        assert order.status == "draft"


def test_dose_with_comparator_is_not_a_dose(catalog_kb):  # type: ignore[no-untyped-def]
    order = parse(ketamine_request(dose={**mg(50), "comparator": "<="}), catalog_kb)
    assert order.dose is None and any("limit" in p for p in order.problems)
