"""Section 4: IV ketamine dose bands, infusion time, frequency, missing weight, the standard-dose suggestion."""

from __future__ import annotations

import pytest
from rules2_support import NOW, by_topic, iv_order, record, run, topics, weight

from cds_service.order.model import DoseUnit, InfusionRate, OrderStage, Route
from cds_service.record import kinds
from cds_service.rules.dosing import latest_weight, round_dose, standard_dose_mg
from cds_service.rules.findings import CheckStatus, DeleteOrder, Indicator, RewriteDose

KG70 = record(weights=[weight(70)])
BANDS = {"dose-below-range", "dose-above-standard", "dose-anesthetic-range"}


def band_topics(dose: float, unit: DoseUnit, kb, rec=KG70) -> set[str]:  # type: ignore[no-untyped-def]
    findings, _ = run(rec, iv_order(dose, unit), kb)
    return topics(findings) & BANDS


# --- the four bands, as mg/kg and as mg for a 70 kg patient -------------------------------------------

@pytest.mark.parametrize(
    ("mg_per_kg", "expected"),
    [
        (0.099, {"dose-below-range"}), (0.1, set()),
        (0.5, set()), (0.525, set()), (0.526, {"dose-above-standard"}),
        (0.99, {"dose-above-standard"}), (1.0, {"dose-anesthetic-range"}), (4.5, {"dose-anesthetic-range"}),
    ],
)
def test_bands_mg_per_kg(kb, mg_per_kg, expected):  # type: ignore[no-untyped-def]
    assert band_topics(mg_per_kg, DoseUnit.MG_PER_KG, kb) == expected


@pytest.mark.parametrize(
    ("mg", "expected"),
    [
        (6.93, {"dose-below-range"}), (7, set()),  # 0.099 vs 0.1 mg/kg at 70 kg
        (35, set()), (36.75, set()), (36.82, {"dose-above-standard"}),  # 0.5 / 0.525 / 0.526
        (69.3, {"dose-above-standard"}), (70, {"dose-anesthetic-range"}),  # 0.99 vs 1.0
    ],
)
def test_bands_mg_with_kg_weight(kb, mg, expected):  # type: ignore[no-untyped-def]
    assert band_topics(mg, DoseUnit.MG, kb) == expected


@pytest.mark.parametrize(("mg", "expected"), [(69.3, {"dose-above-standard"}), (70, {"dose-anesthetic-range"})])
def test_bands_mg_with_lb_weight(kb, mg, expected):  # type: ignore[no-untyped-def]
    rec = record(weights=[weight(lb=70 / 0.45359237)])  # 154.3 lb = 70 kg
    assert band_topics(mg, DoseUnit.MG, kb, rec) == expected


def test_anesthetic_is_critical_with_delete(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(KG70, iv_order(84), kb)
    f = by_topic(findings, "dose-anesthetic-range")
    assert f.indicator is Indicator.CRITICAL and DeleteOrder() in f.suggestions
    assert f.facts["mg_per_kg"] == "1.2"


def test_above_standard_and_below_range_are_warnings(kb):  # type: ignore[no-untyped-def]
    assert by_topic(run(KG70, iv_order(50), kb)[0], "dose-above-standard").indicator is Indicator.WARNING
    assert by_topic(run(KG70, iv_order(5), kb)[0], "dose-below-range").indicator is Indicator.WARNING


# --- infusion time and frequency ----------------------------------------------------------------------

@pytest.mark.parametrize(("minutes", "fires"), [(39, True), (39.9, True), (40, False), (100, False)])
def test_infusion_time_boundary(kb, minutes, fires):  # type: ignore[no-untyped-def]
    findings, _ = run(KG70, iv_order(35, minutes=minutes), kb)
    assert ("infusion-too-fast" in topics(findings)) is fires


@pytest.mark.parametrize(("mg", "fires"), [(17.5, False), (17.6, True)])  # 0.25 mg/kg vs just above, over 20 min
def test_infusion_time_only_above_quarter_mg_per_kg(kb, mg, fires):  # type: ignore[no-untyped-def]
    findings, _ = run(KG70, iv_order(mg, minutes=20), kb)
    assert ("infusion-too-fast" in topics(findings)) is fires


def test_duration_from_mixed_basis_rate_uses_weight(kb):  # type: ignore[no-untyped-def]
    rate = InfusionRate(per_minute=0.5 / 20, weight_based=True, as_written="1.5 mg/kg/h")  # 35 mg at 70 kg in 20 min
    findings, checks = run(KG70, iv_order(35, minutes=None, rate=rate), kb)
    assert "infusion-too-fast" in topics(findings)
    assert "over 20 min" in next(c.note for c in checks if c.criterion == "Dose")


@pytest.mark.parametrize(("per_week", "fires"), [(3, False), (3.5, True), (7, True), (None, False)])
def test_frequency_boundary(kb, per_week, fires):  # type: ignore[no-untyped-def]
    findings, _ = run(KG70, iv_order(35, per_week=per_week), kb)
    assert ("frequency-above-protocol" in topics(findings)) is fires


# --- weight ------------------------------------------------------------------------------------------

def test_weight_undocumented_and_no_mg_checks(kb):  # type: ignore[no-untyped-def]
    findings, checks = run(record(), iv_order(70), kb)
    assert topics(findings) == {"weight-undocumented"}
    dose = next(c for c in checks if c.criterion == "Dose")
    assert dose.status is CheckStatus.UNDOCUMENTED


def test_mg_per_kg_dose_is_checked_without_weight(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), iv_order(1.0, DoseUnit.MG_PER_KG), kb)
    assert {"weight-undocumented", "dose-anesthetic-range"} <= topics(findings)


@pytest.mark.parametrize(("age_days", "recent"), [(89.9, True), (90.1, False)])
def test_weight_lookback_boundary(kb, age_days, recent):  # type: ignore[no-untyped-def]
    rec = record(weights=[weight(70, age_days=age_days)])
    assert (latest_weight(rec, kb, NOW) is not None) is recent
    findings, _ = run(rec, iv_order(35), kb)
    assert ("weight-undocumented" in topics(findings)) is not recent
    if not recent:
        assert "older than 90 days" in by_topic(findings, "weight-undocumented").detail[0]


def test_weight_unobtainable_variant(kb):  # type: ignore[no-untyped-def]
    rec = record(available=kinds.ALL - {kinds.WEIGHT})
    f = by_topic(run(rec, iv_order(35), kb)[0], "weight-undocumented")
    assert f.variant == "unobtainable"


def test_weight_undocumented_also_on_order_select(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), iv_order(None, stage=OrderStage.SELECT), kb)
    assert topics(findings) == {"weight-undocumented"}


# --- standard dose and suggestion ---------------------------------------------------------------------

@pytest.mark.parametrize(("kg", "mg"), [(70, 35), (73, 37), (72.9, 36), (15, 8), (100, 50)])
def test_standard_dose_rounded_half_up(kb, kg, mg):  # type: ignore[no-untyped-def]
    assert standard_dose_mg(kg, kb) == mg


def test_round_dose(kb):  # type: ignore[no-untyped-def]
    assert round_dose(36.5, kb) == 37 and round_dose(36.49, kb) == 36


def test_suggestion_for_deviating_dose(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(KG70, iv_order(50, minutes=20), kb)
    f = by_topic(findings, "dose-standard-suggestion")
    assert f.indicator is Indicator.INFO and f.variant == "default"
    assert f.suggestions == (RewriteDose(35, 40),)
    assert "0.714 mg/kg" in f.facts["deviation"] and "20 min" in f.facts["deviation"]


@pytest.mark.parametrize("dose", [35, 34, 36, 0.5])
def test_no_suggestion_for_standard_order(kb, dose):  # type: ignore[no-untyped-def]
    unit = DoseUnit.MG_PER_KG if dose < 1 else DoseUnit.MG
    findings, checks = run(KG70, iv_order(dose, unit), kb)
    assert findings == []
    assert next(c for c in checks if c.criterion == "Dose").status is CheckStatus.MET


def test_suggestion_when_duration_missing_on_sign_only(kb):  # type: ignore[no-untyped-def]
    assert "dose-standard-suggestion" in topics(run(KG70, iv_order(35, minutes=None), kb)[0])
    select = iv_order(35, minutes=None, stage=OrderStage.SELECT)
    assert "dose-standard-suggestion" not in topics(run(KG70, select, kb)[0])


def test_no_suggestion_without_weight(kb):  # type: ignore[no-untyped-def]
    assert "dose-standard-suggestion" not in topics(run(record(), iv_order(50), kb)[0])


def test_unreadable_dose_on_sign_is_said_with_a_suggestion(kb):  # type: ignore[no-untyped-def]
    order = iv_order(None, problems=("dose unit 'ML' not understood (expected mg, ug, g or mg/kg)",))
    findings, checks = run(KG70, order, kb)
    f = by_topic(findings, "dose-standard-suggestion")
    assert (f.variant, f.indicator) == ("unreadable", Indicator.WARNING)
    assert "'ML'" in f.facts["problem"] and f.suggestions == (RewriteDose(35, 40),)
    assert topics(findings) == {"dose-standard-suggestion"}
    dose = next(c for c in checks if c.criterion == "Dose")
    assert dose.status is CheckStatus.UNDOCUMENTED and "'ML'" in dose.note


def test_missing_dose_on_sign_without_weight(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(record(), iv_order(None), kb)
    f = by_topic(findings, "dose-standard-suggestion")
    assert f.variant == "unreadable-no-weight" and f.suggestions == ()
    assert f.facts["problem"] == "no dose was entered"


def test_order_select_without_dose_has_no_dose_findings(kb):  # type: ignore[no-untyped-def]
    findings, checks = run(KG70, iv_order(None, minutes=None, per_week=None, stage=OrderStage.SELECT), kb)
    assert findings == []
    assert next(c for c in checks if c.criterion == "Dose").note.startswith("no dose entered yet")


def test_order_select_with_dose_is_checked(kb):  # type: ignore[no-untyped-def]
    findings, _ = run(KG70, iv_order(70, minutes=None, stage=OrderStage.SELECT), kb)
    assert "dose-anesthetic-range" in topics(findings)


def test_dose_check_line_for_the_summary(kb):  # type: ignore[no-untyped-def]
    _, checks = run(KG70, iv_order(42, minutes=20), kb)
    (dose,) = [c for c in checks if c.criterion == "Dose"]
    assert dose.status is CheckStatus.NOT_MET
    assert "42 mg = 0.6 mg/kg" in dose.note and "standard for 70 kg: 35 mg" in dose.note
    assert "over 20 min" in dose.note and dose.evidence


@pytest.mark.parametrize("route", [Route.UNSPECIFIED, Route.INTRAVENOUS])
def test_no_route_is_read_as_iv(kb, route):  # type: ignore[no-untyped-def]
    assert "dose-anesthetic-range" in topics(run(KG70, iv_order(70, route=route), kb)[0])


def test_other_route_gets_no_iv_dose_rules(kb):  # type: ignore[no-untyped-def]
    findings, checks = run(KG70, iv_order(70, route=Route.OTHER), kb)
    assert topics(findings) & (BANDS | {"dose-standard-suggestion", "infusion-too-fast"}) == set()
    assert next(c for c in checks if c.criterion == "Dose").status is CheckStatus.NOT_APPLICABLE


@pytest.mark.parametrize(("mg", "fires"), [(8, False), (9, True)])
def test_rounded_standard_dose_at_low_weight_is_not_above_standard(kb, mg, fires):  # type: ignore[no-untyped-def]
    # 15 kg: 0.5 mg/kg = 7.5 mg, rounded to 8 mg (0.533 mg/kg): the suggested dose must not be warned about
    rec = record(weights=[weight(15)])
    findings, _ = run(rec, iv_order(mg), kb)
    assert ("dose-above-standard" in topics(findings)) is fires
    assert ("dose-standard-suggestion" in topics(findings)) is fires


def test_weight_based_order_without_weight_variant(kb):  # type: ignore[no-untyped-def]
    f = by_topic(run(record(), iv_order(0.5, DoseUnit.MG_PER_KG), kb)[0], "weight-undocumented")
    assert f.variant == "weight-based-order" and f.facts["ordered"] == "0.5 mg/kg"


def test_chronic_pain_protocol_is_not_judged_by_depression_bands(kb):  # type: ignore[no-untyped-def]
    from rules2_support import condition

    crps = record(weights=[weight(70)], conditions=[condition("c-crps", "chronic-pain-crps", "G90.50")])
    rate = InfusionRate(per_minute=0.35 / 60, weight_based=True, as_written="0.35 mg/kg/h")
    order = iv_order(1.4, DoseUnit.MG_PER_KG, minutes=240, per_week=7, rate=rate)  # 0.35 mg/kg/h x 4 h daily
    findings, checks = run(crps, order, kb)
    assert topics(findings) == {"chronic-pain-evidence"}
    (told,) = by_topic(findings, "chronic-pain-evidence").detail  # the prescriber is told, on the card
    assert told.startswith("The ordered dose (1.4 mg/kg) was **not judged against the depression dose bands**")
    assert "0.35 mg/kg/h" in told
    dose = next(c for c in checks if c.criterion == "Dose")
    assert dose.status is CheckStatus.NOT_APPLICABLE and "chronic-pain" in dose.note and "98 mg" in dose.note
    # the same order for depression is anaesthetic-range and too frequent
    findings, _ = run(KG70, order, kb)
    assert {"dose-anesthetic-range", "frequency-above-protocol"} <= topics(findings)
