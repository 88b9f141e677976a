"""Reading the order the way real clients send it (clinical-rules.md §0): a lone object where FHIR has a list is
read as a one-element list and said; an element that cannot be read is named, never dropped in silence."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.order.model import DoseUnit, OrderStage
from cds_service.order.parser import parse_order
from tests.order.test_parser import IV, SNOMED, ketamine_request, mg

CRPS = {"coding": [{"system": SNOMED, "code": "128200000", "display": "Complex regional pain syndrome"}],
        "text": "CRPS"}  # fmt: skip


def _parse(res: dict[str, Any], kb: Any) -> Any:
    return parse_order(res, {"resourceType": "Bundle", "entry": [{"resource": res}]}, kb, OrderStage.SIGN)


def test_a_lone_reason_code_object_from_the_sandbox_is_read_as_one_reason_and_said(catalog_kb: Any) -> None:
    as_list = ketamine_request(dose=mg(35)) | {"reasonCode": [CRPS]}
    lone = ketamine_request(dose=mg(35)) | {"reasonCode": CRPS}
    listed, single = _parse(as_list, catalog_kb), _parse(lone, catalog_kb)
    assert single.reason_codes == listed.reason_codes and single.reason_text == listed.reason_text == "CRPS"
    assert [c.code for c in single.reason_codes] == ["128200000"]
    assert listed.normalised == () and listed.unreadable == ()
    assert single.normalised == ("the order's reason (reasonCode) was sent as a single entry, not a list: read as one",)


def test_a_lone_reason_reference_and_a_lone_coding_are_read(catalog_kb: Any) -> None:
    res = ketamine_request(dose=mg(35)) | {
        "reasonReference": {"reference": "Condition/c9", "display": "Chronic pain"},
        "reasonCode": [{"coding": {"system": SNOMED, "code": "47505003", "display": "PTSD"}}],
    }
    order = _parse(res, catalog_kb)
    assert [c.code for c in order.reason_codes] == ["47505003"]
    assert order.reason_references == ("Condition/c9",) and order.reason_text == "Chronic pain"
    assert len(order.normalised) == 1 and "reasonReference" in order.normalised[0]


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("depression", "the order's reason (reasonCode) could not be read (not a list of entries)"),
        (["depression", CRPS], "1 of the 2 entries of the order's reason (reasonCode) could not be read"),
        (42, "the order's reason (reasonCode) could not be read (not a list of entries)"),
    ],
)
def test_an_unreadable_reason_is_named_never_dropped_in_silence(catalog_kb: Any, reason: Any, said: str) -> None:
    order = _parse(ketamine_request(dose=mg(35)) | {"reasonCode": reason}, catalog_kb)
    assert order.unreadable == (said,)
    assert order.problems == ()  # the dose was read: nothing to say on the dose card


def test_a_lone_dosage_instruction_and_dose_and_rate_are_read_as_lists(catalog_kb: Any) -> None:
    listed = ketamine_request(dose=mg(35), repeat={"duration": 40, "durationUnit": "min"})
    dosage = dict(listed["dosageInstruction"][0])
    dosage["doseAndRate"] = dosage["doseAndRate"][0]
    lone = listed | {"dosageInstruction": dosage}
    order = _parse(lone, catalog_kb)
    assert order.dose is not None and (order.dose.value, order.dose.unit) == (35, DoseUnit.MG)
    assert order.duration_minutes == 40 and order.route.value == "intravenous"
    assert order.normalised == (
        "the dosage instruction was sent as a single entry, not a list: read as one",
        "the dose and rate was sent as a single entry, not a list: read as one",
    )


def test_an_unreadable_dosage_is_a_dose_problem(catalog_kb: Any) -> None:
    order = _parse(ketamine_request() | {"dosageInstruction": "0.5 mg/kg over 40 min"}, catalog_kb)
    assert order.dose is None
    assert order.problems == ("the dosage instruction could not be read (not a list of entries)",)
    assert order.unreadable == ()


def test_the_textbook_shape_has_nothing_to_say(catalog_kb: Any) -> None:
    order = _parse(ketamine_request(dose=mg(35), route=IV) | {"reasonCode": [CRPS]}, catalog_kb)
    assert (order.normalised, order.unreadable, order.problems) == ((), (), ())
