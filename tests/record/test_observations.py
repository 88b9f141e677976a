"""Observations: BP panels and pairs, weights in any unit, scores, hCG results, ignored statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cds_service.knowledge.loader import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record, max_vitals_per_kind
from cds_service.record.model import Instrument, PatientRecord
from tests.record.record_samples import SCT, UCUM, bp_panel, mmhg, observation, weight

AVAILABLE = frozenset({kinds.BLOOD_PRESSURE, kinds.WEIGHT, kinds.SCORES, kinds.PREGNANCY_TESTS})
V2 = "http://terminology.hl7.org/CodeSystem/v2-0078"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _record(kb: Knowledge, *resources: dict) -> PatientRecord:
    return build_record(list(resources), kb, available=AVAILABLE)


def test_bp_panels_current_and_legacy(kb: Knowledge) -> None:
    record = _record(
        kb,
        bp_panel("new", "2026-11-20T09:00:00Z", 162, 98),
        bp_panel("legacy", "2019-04-01T09:00:00Z", 129.7, 75.4, code="55284-4"),
    )
    assert [(b.resource_id, b.systolic, b.diastolic) for b in record.blood_pressures] == [
        ("new", 162, 98),
        ("legacy", 130, 75),  # whole mmHg, rounded half up
    ]
    assert record.blood_pressures[0].when == datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_separate_systolic_and_diastolic_are_paired_by_time(kb: Knowledge) -> None:
    record = _record(
        kb,
        observation("s1", "8480-6", "2026-11-20T09:00:00Z", valueQuantity=mmhg(150)),
        observation("d1", "8462-4", "2026-11-20T09:02:00+00:00", valueQuantity=mmhg(95)),
        observation("s2", "8480-6", "2026-11-01T09:00:00Z", valueQuantity=mmhg(135)),
        observation("d2", "8462-4", "2026-10-01T09:00:00Z", valueQuantity=mmhg(85)),
    )
    assert [(b.systolic, b.diastolic) for b in record.blood_pressures] == [(150, 95), (135, None), (None, 85)]


def test_weights_in_kg_pounds_and_grams(kb: Knowledge) -> None:
    record = _record(
        kb,
        weight("kg", "2026-11-20", 72.5, "kg"),
        weight("lb", "2026-11-10", 150, "[lb_av]"),
        weight("lbs", "2026-11-01", 150, "lbs", ucum=False),
        weight("g", "2026-10-01", 70000, "g"),
        observation(
            "measured", "3141-9", "2026-09-01", valueQuantity={"value": 71, "unit": "kg", "system": UCUM, "code": "kg"}
        ),
    )
    kg = {w.resource_id: w.kg for w in record.weights}
    assert kg == {"kg": 72.5, "lb": 68.039, "lbs": 68.039, "g": 70.0, "measured": 71.0}
    assert record.weights[1].as_recorded == "150 [lb_av]"


def test_weight_in_an_unknown_unit_is_skipped_and_reported(kb: Knowledge) -> None:
    record = _record(kb, weight("st", "2026-11-20", 11, "stone", ucum=False))
    assert record.weights == ()
    assert [(s.resource_id, s.problem) for s in record.skipped] == [
        ("st", "valueQuantity: weight unit 'stone' not understood")
    ]


def test_phq9_as_integer_or_quantity_and_out_of_range(kb: Knowledge) -> None:
    record = _record(
        kb,
        observation("int", "44261-6", "2026-11-20", valueInteger=18),
        observation("qty", "44261-6", "2026-10-20", valueQuantity={"value": 12, "unit": "{score}"}),
        observation("bad", "44261-6", "2026-09-20", valueInteger=31),
        observation("item9", "44260-8", "2026-11-20", valueInteger=2),  # an item, not the total
    )
    assert [(s.resource_id, s.instrument, s.value) for s in record.scores] == [
        ("int", Instrument.PHQ9, 18),
        ("qty", Instrument.PHQ9, 12),
    ]
    assert [(s.resource_id, s.problem) for s in record.skipped] == [("bad", "value: outside the PHQ-9 range 0-27")]


def test_madrs_and_hamd_by_name_and_by_configured_local_code(tmp_path: Path, kb: Knowledge) -> None:
    madrs = {
        "resourceType": "Observation",
        "id": "m",
        "status": "final",
        "code": {"text": "MADRS total score"},
        "effectiveDateTime": "2026-11-01",
        "valueInteger": 28,
    }
    hamd_local = {
        "resourceType": "Observation",
        "id": "h",
        "status": "final",
        "code": {"coding": [{"system": "urn:oid:1.2.3", "code": "HAMD17"}]},
        "effectiveDateTime": "2026-10-01",
        "valueInteger": 21,
    }
    hamd_name = {"resourceType": "Observation", "id": "h2", "status": "final",
                 "code": {"coding": [{"system": "urn:oid:9.9", "code": "X1", "display": "HAM-D total score"}]},
                 "effectiveDateTime": "2026-09-01", "valueQuantity": {"value": 19}}  # fmt: skip
    default = _record(kb, madrs, hamd_local, hamd_name)
    assert [(s.resource_id, s.instrument) for s in default.scores] == [
        ("m", Instrument.MADRS),
        ("h2", Instrument.HAMD),
    ]
    config = tmp_path / "site.yaml"
    config.write_text("local_score_codes:\n  HAM-D: [{system: 'urn:oid:1.2.3', code: HAMD17}]\n")
    configured = _record(load_knowledge(str(config)), madrs, hamd_local, hamd_name)
    assert [s.resource_id for s in configured.scores] == ["m", "h", "h2"]


def test_entered_in_error_and_cancelled_observations_are_ignored(kb: Knowledge) -> None:
    record = _record(
        kb,
        observation("eie", "44261-6", "2026-11-20", status="entered-in-error", valueInteger=25),
        observation("cx", "29463-7", "2026-11-20", status="cancelled"),
        bp_panel("ok", "2026-11-19T09:00:00Z", 120, 80),
    )
    assert record.scores == () and record.weights == ()
    assert [b.resource_id for b in record.blood_pressures] == ["ok"]


def test_pregnancy_tests_read_from_value_interpretation_or_text(kb: Knowledge) -> None:
    def concept(system: str, code: str) -> dict:
        return {"coding": [{"system": system, "code": code}]}

    record = _record(
        kb,
        observation("pos", "2106-3", "2026-11-20", valueCodeableConcept=concept(SCT, "10828004")),
        observation("neg", "2118-8", "2026-11-19", valueCodeableConcept=concept(SCT, "260415000")),
        observation("v2", "80384-1", "2026-11-18", interpretation=[concept(V2, "POS")]),
        observation("v3", "2112-1", "2026-11-17", interpretation=[concept(V3, "NEG")]),
        observation("txt", "2106-3", "2026-11-16", valueString="Positive"),
        observation("txtneg", "2106-3", "2026-11-15", valueString="not detected"),
        observation("quant", "19080-1", "2026-11-14", valueQuantity={"value": 250, "unit": "[IU]/L"}),
        observation("odd", "2106-3", "2026-11-13", valueString="see comment"),
    )
    assert [(t.resource_id, t.positive) for t in record.pregnancy_tests] == [
        ("pos", True),
        ("neg", False),
        ("v2", True),
        ("v3", False),
        ("txt", True),
        ("txtneg", False),
        ("quant", None),
        ("odd", None),
    ]


def test_invalid_observation_is_skipped_but_unrelated_ones_are_never_validated(kb: Knowledge) -> None:
    bad_bp = bp_panel("bad", "2026-11-20T09:00:00Z", 150, 90)
    bad_bp["effectiveDateTime"] = "20/11/2026"
    bad_heart_rate = observation("hr", "8867-4", "yesterday", valueQuantity={"value": "fast"})
    record = _record(kb, bad_bp, bad_heart_rate, bp_panel("good", "2026-11-01T09:00:00Z", 130, 85))
    assert [b.resource_id for b in record.blood_pressures] == ["good"]
    assert [(s.resource_type, s.resource_id) for s in record.skipped] == [("Observation", "bad")]
    assert record.skipped[0].problem.startswith("effectiveDateTime:")
    assert "2026" not in record.skipped[0].problem


def test_heavy_record_keeps_the_newest_vitals(kb: Knowledge) -> None:
    resources: list[dict] = []
    for i in range(1500):  # ~4 years of twice-daily vitals
        day = datetime(2022, 11, 23, tzinfo=UTC).timestamp() + i * 86400
        when = datetime.fromtimestamp(day, UTC).isoformat()
        resources.append(bp_panel(f"bp{i}", when, 120 + i % 30, 80))
        resources.append(weight(f"w{i}", when, 70 + (i % 5), "kg"))
        resources.append(observation(f"hr{i}", "8867-4", when, valueQuantity={"value": 70, "unit": "/min"}))
    resources.append(observation("phq", "44261-6", "2026-11-20", valueInteger=17))
    record = _record(kb, *resources)
    assert record.blood_pressures[0].resource_id == "bp1499"
    assert record.weights[0].resource_id == "w1499"
    cap = max_vitals_per_kind(kb)
    assert 0 < len(record.blood_pressures) <= cap and 0 < len(record.weights) <= cap
    assert [s.value for s in record.scores] == [17]
