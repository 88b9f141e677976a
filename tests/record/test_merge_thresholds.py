"""Medication periods and vital-sign reading limits come from thresholds.yaml (boundary pairs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cds_service.knowledge.loader import KnowledgeError, load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.record import kinds
from cds_service.record.builder import build_record, max_vitals_per_kind
from cds_service.record.model import PatientRecord
from tests.record.record_samples import bp_panel, dosage, request, rx_concept, statement

SERTRALINE_100 = {"medicationCodeableConcept": rx_concept("312938", "sertraline 100 MG Oral Tablet")}
AVAILABLE = frozenset({kinds.PATIENT, kinds.MEDICATIONS, kinds.BLOOD_PRESSURE})


def _record(kb: Knowledge, *resources: dict) -> PatientRecord:
    return build_record(list(resources), kb, available=AVAILABLE)


def _iso(day: datetime) -> str:
    return day.date().isoformat()


def _spans(record: PatientRecord) -> list[tuple[str, str | None]]:
    return sorted(
        (_iso(e.start) if e.start else "", _iso(e.end) if e.end else None)
        for e in record.exposures
        if e.ingredient == "sertraline"
    )


@pytest.mark.parametrize(("gap_days", "periods"), [(7, 1), (8, 2)])
def test_merge_gap_boundary(kb: Knowledge, gap_days: int, periods: int) -> None:
    first_end = datetime(2024, 3, 1, tzinfo=UTC)
    record = _record(
        kb,
        statement("a", SERTRALINE_100, start="2024-01-01", end=_iso(first_end), dosages=[dosage(100, "mg")]),
        statement("b", SERTRALINE_100, start=_iso(first_end + timedelta(days=gap_days)), end="2024-06-01",
                  dosages=[dosage(100, "mg")]),
    )  # fmt: skip
    assert kb.number("medications.merge_gap_days") == 7
    assert len(_spans(record)) == periods


@pytest.mark.parametrize(("interval", "periods"), [(35, 1), (36, 2)])
def test_successive_refills_without_supply_duration_are_one_period(
    kb: Knowledge, interval: int, periods: int
) -> None:
    """A MedicationRequest-only history with no supply durations: refills up to 35 days apart are one trial."""
    start = datetime(2024, 1, 10, tzinfo=UTC)
    refills = [
        request(
            f"r{i}", SERTRALINE_100, authored=_iso(start + timedelta(days=interval * i)),
            dosages=[dosage(1, "TAB")],
        )
        for i in range(3)
    ]
    record = _record(kb, *refills)
    assert all("duration-unknown" in u.flags for u in record.medication_uses)
    spans = _spans(record)
    assert len(spans) == (1 if periods == 1 else 3)
    if periods == 1:
        # the period ends at the last documented date (the last refill), never stretched by the gap
        assert spans == [(_iso(start), _iso(start + timedelta(days=2 * interval)))]


def test_refill_gap_does_not_join_uses_with_a_known_end(kb: Knowledge) -> None:
    record = _record(
        kb,
        request("a", SERTRALINE_100, authored="2024-01-10", supply=(30, "d")),  # ends 2024-02-09
        request("b", SERTRALINE_100, authored="2024-02-25", supply=(30, "d")),  # 16 days after: a new period
    )
    assert len(_spans(record)) == 2


def test_gaps_are_deployment_settings(tmp_path: Path) -> None:
    site = tmp_path / "rules.yaml"
    site.write_text("thresholds:\n  medications.refill_gap_days: 100\n  medications.merge_gap_days: 0\n")
    kb = load_knowledge(str(site))
    record = _record(
        kb,
        request("r1", SERTRALINE_100, authored="2024-01-10"),
        request("r2", SERTRALINE_100, authored="2024-04-10"),  # 91 days: a 90-day refill
    )
    assert len(_spans(record)) == 1


def test_vitals_cap_comes_from_thresholds(tmp_path: Path, kb: Knowledge) -> None:
    readings = [bp_panel(f"bp{i}", f"2026-11-{i + 1:02d}T09:00:00Z", 120 + i, 80) for i in range(20)]
    assert max_vitals_per_kind(kb) == 10
    assert len(_record(kb, *readings).blood_pressures) == 10
    site = tmp_path / "rules.yaml"
    site.write_text("thresholds:\n  vitals.max_readings_per_kind: 3\n")
    small = load_knowledge(str(site))
    record = _record(small, *readings)
    assert [b.resource_id for b in record.blood_pressures] == ["bp19", "bp18", "bp17"]


@pytest.mark.parametrize(("value", "ok"), [(1, True), (0, False)])
def test_vitals_cap_override_minimum_is_one(tmp_path: Path, value: int, ok: bool) -> None:
    site = tmp_path / "rules.yaml"
    site.write_text(f"thresholds:\n  vitals.max_readings_per_kind: {value}\n")
    if ok:
        assert load_knowledge(str(site)).thresholds["vitals.max_readings_per_kind"] == value
    else:
        with pytest.raises(KnowledgeError, match=r"vitals.max_readings_per_kind: 0 is less than the minimum of 1"):
            load_knowledge(str(site))
