"""Build the sandbox fixture library: bundles, order templates, manifest and request files.

    .venv/bin/python fhir_fixtures/build.py          # rewrite everything under fhir_fixtures/
    .venv/bin/python fhir_fixtures/build.py --check  # exit 1 if a committed file differs from its spec

Each patient below is a compact spec (a story, the facts of its chart, its order and the cards the rule
catalogue ``clinical-rules.md`` expects). The output is deterministic and committed, so users load the JSON
without running code. Dates are days before the anchor (``fhirgen.ANCHOR``); the roller moves them to the
evaluation date. Expected cards are decided from the rule catalogue alone (section numbers in ``covers``),
never from the rules' code.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from fhirgen import ANCHOR, BP_PANEL, CONDITIONS, DRUGS, LOINC, SNOMED, Chart, coding, qty  # noqa: E402

from cds_service.sandbox.requests import HOOKS, build_request  # noqa: E402
from cds_service.sandbox.requests import PATIENT_VIEW as PATIENT_VIEW_HOOK  # noqa: E402

INFO, WARNING, CRITICAL = "info", "warning", "critical"
SUMMARY = ("eligibility-summary", INFO)
DATA = ("pre-dose-data-missing", WARNING)

IV_ROUTE = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route (qualifier value)"}]}
NASAL_ROUTE = {"coding": [{"system": SNOMED, "code": "46713006", "display": "Nasal route (qualifier value)"}]}
ORAL_ROUTE = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral use"}]}


# --- order templates --------------------------------------------------------------------------------------
def _iv(
    name: str, description: str, parameters: dict[str, Any], *, contained: bool = False, route: bool = True
) -> dict[str, Any]:
    med: dict[str, Any]
    extra: dict[str, Any] = {}
    ketamine = coding(DRUGS["ketamine"])
    ketamine["text"] = "ketamine hydrochloride injection, dilute before IV use"
    if contained:
        extra["contained"] = [{"resourceType": "Medication", "id": "ketamine", "code": ketamine}]
        med = {"medicationReference": {"reference": "#ketamine", "display": "ketamine"}}
    else:
        med = {"medicationCodeableConcept": ketamine}
    resource = {
        "resourceType": "MedicationRequest",
        **extra,
        "status": "draft",
        "intent": "order",
        **med,
        "dosageInstruction": [
            {
                **({"route": IV_ROUTE} if route else {}),
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
                "doseAndRate": [{}],
            }
        ],
    }
    return {"name": name, "description": description, "parameters": parameters, "resource": resource}


def _ndc(template: dict[str, Any]) -> dict[str, Any]:
    template["resource"]["medicationCodeableConcept"] = NDC_SPRAVATO_56
    return template


def _esk(mg: int) -> dict[str, Any]:
    return {
        "name": f"esketamine-{mg}mg",
        "description": f"Intranasal esketamine (Spravato) {mg} mg, twice weekly (induction phase).",
        "parameters": {"dose_mg": mg},
        "resource": {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": coding(DRUGS["esketamine-spravato"]),
            "dosageInstruction": [
                {
                    "route": NASAL_ROUTE,
                    "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
                    "doseAndRate": [{}],
                }
            ],
        },
    }


NDC_SPRAVATO_56 = {
    "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "50458-028-02",
                "display": "56 mg Dose Kit: unit-dose carton containing two 28 mg nasal spray devices"}],
    "text": "Spravato 56 mg dose kit",
}

TEMPLATES: list[dict[str, Any]] = [
    _iv(
        "iv-ketamine-standard",
        "IV ketamine 0.5 mg/kg x the patient's latest weight (rounded to 1 mg) over 40 min, twice weekly.",
        {"mg_per_kg": 0.5, "duration_min": 40, "frequency_per_week": 2},
    ),
    _iv("iv-ketamine-35mg-40min", "IV ketamine 35 mg over 40 min, twice weekly.", {"dose_mg": 35, "duration_min": 40}),
    _iv(
        "iv-ketamine-fixed-dose",
        "IV ketamine at a fixed mg dose (parameter dose_mg, default 40) over 40 min, twice weekly.",
        {"dose_mg": 40, "duration_min": 40, "frequency_per_week": 2},
    ),
    _iv(
        "iv-ketamine-contained-medication",
        "IV ketamine 0.5 mg/kg over 40 min whose medication is a contained Medication (medicationReference).",
        {"mg_per_kg": 0.5, "duration_min": 40, "frequency_per_week": 2},
        contained=True,
    ),
    _iv(
        "iv-ketamine-rate",
        "IV ketamine at a fixed mg dose (dose_mg, default 40) run at rate_mg_per_h (default 60): the duration "
        "follows from dose and rate (40 mg at 60 mg/h = 40 min).",
        {"dose_mg": 40, "rate_mg_per_h": 60, "frequency_per_week": 2},
    ),
    _iv(
        "iv-ketamine-mg-per-kg",
        "IV ketamine written as 0.5 mg/kg (dose unit mg/kg) over 40 min, twice weekly.",
        {"dose_mg_per_kg": 0.5, "duration_min": 40, "frequency_per_week": 2},
    ),
    _iv(
        "iv-ketamine-no-route",
        "IV ketamine 0.5 mg/kg over 40 min with no route on the order (ketamine without a route is read as IV).",
        {"mg_per_kg": 0.5, "duration_min": 40, "frequency_per_week": 2},
        route=False,
    ),
    _iv(
        "iv-ketamine-pain-infusion",
        "IV ketamine for chronic pain: 1.4 mg/kg at rate_mg_per_kg_per_h (default 0.35 mg/kg/h) over 4 hours, daily "
        "(the consensus CRPS protocol).",
        {"dose_mg_per_kg": 1.4, "rate_mg_per_kg_per_h": 0.35, "duration_min": 240, "frequency_per_week": 7},
    ),
    {
        **_ndc(_esk(56)),
        "name": "esketamine-56mg-ndc",
        "description": "Spravato 56 mg twice weekly coded only by the 56 mg dose-kit NDC 50458-028-02.",
    },
    _esk(28),
    _esk(56),
    _esk(84),
    _esk(85),
    {
        "name": "oral-sertraline-50mg",
        "description": "Not a ketamine order: sertraline 50 mg by mouth daily (the service must answer no cards).",
        "parameters": {},
        "resource": {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": coding(DRUGS["sertraline-50"]),
            "dosageInstruction": [
                {
                    "route": ORAL_ROUTE,
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": qty(50, "mg")}],
                }
            ],
        },
    },
]


# --- patient specs ----------------------------------------------------------------------------------------
@dataclass
class Spec:
    name: str
    story: str
    chart: Callable[[Chart], Any]
    expected: list[tuple[str, str]]
    template: str = "iv-ketamine-standard"
    params: dict[str, Any] = field(default_factory=dict)
    covers: list[str] = field(default_factory=list)
    notes: str = ""
    person: tuple[str, str, str, date] = ("Alex", "Sample", "male", date(1981, 6, 14))


def person(given: str, family: str, gender: str, birth: str) -> tuple[str, str, str, date]:
    return (given, family, gender, date.fromisoformat(birth))


def trd_history(
    c: Chart,
    *,
    dx: str | None = "mdd-recurrent-severe",
    dx_verification: str | None = "confirmed",
    second: tuple[str, float] = ("venlafaxine-xr-150", 150),
    second_scores: tuple[int, int] = (21, 20),
    second_span: tuple[float, float] = (330, 190),
    trial_scores: bool = True,
    dx_clinical: str = "active",
    current: str | None = "bupropion-xl-300",
    latest_phq9: int | None = 19,
    latest_phq9_day: float = 10,
    phq9_integer: bool = False,
    bp: tuple[int, int] | None = (122, 78),
    bp_day: float = 7,
    weight_kg: float | None = 80,
    weight_day: float = 7,
) -> Chart:
    """The common TRD chart: recurrent MDD, two adequate failed trials of different classes, a current
    antidepressant started 21 days ago (too recent to be a trial), PHQ-9 19 ten days ago, normal BP and a
    weight a week ago. Each keyword changes one fact.

    Trial 1: sertraline 100 mg/d (SSRI; floor 50) days 560-460, PHQ-9 20 -> 19 (5%: failed).
    Trial 2: venlafaxine XR 150 mg/d (SNRI; floor 75) days 330-190, PHQ-9 21 -> 20 (5%: failed).
    """
    if dx:
        c.condition(dx, onset=1400, verification=dx_verification, clinical=dx_clinical)
    if trial_scores:
        c.phq9(565, 20).phq9(470, 19).phq9(second_span[0] + 5, second_scores[0]).phq9(200, second_scores[1])
    drug, dose = second
    c.statement("sertraline-100", 100, start=560, end=460)
    c.statement(drug, dose, start=second_span[0], end=second_span[1])
    if current:
        c.statement(current, 300, start=21)
    if latest_phq9 is not None:
        c.phq9(latest_phq9_day, latest_phq9, integer=phq9_integer)
    if bp:
        c.bp(bp_day, *bp)
    if weight_kg is not None:
        c.weight(weight_day, weight_kg)
    return c


def real_feed_bp(c: Chart, days_before: float, systolic: float, diastolic: float) -> Chart:
    """A BP panel as a device feed sends it: decimals kept."""
    return c.bp(days_before, systolic, diastolic)  # type: ignore[arg-type]


def real_feed_bp_text(c: Chart, days_before: float, text: str) -> Chart:
    """A BP panel with the reading as text and no components."""
    c.add(c._obs("vital-signs", BP_PANEL, days_before, valueString=text))
    return c


def real_feed_future(c: Chart) -> Chart:
    """Twelve normal readings dated 10-21 days ahead (a device clock running ahead), and yesterday's 171/104."""
    for ahead in range(12):
        c.bp(-10 - ahead, 118, 76)
    return c.bp(1, 171, 104)


def real_feed_phq9(c: Chart, days_before: float, score: int, category: str) -> Chart:
    code = (LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]")
    c.add(c._obs(category, code, days_before, valueInteger=score))
    return c


def plain_vitals(c: Chart, weight: float = 80) -> Chart:
    return c.bp(7, 118, 76).weight(7, weight)


def long_history(c: Chart) -> None:
    """Eight years of a real-looking chart (deterministic): monthly vitals, PHQ-9 and refills."""
    rng = random.Random(20260101)
    c.condition("mdd-recurrent-severe", onset=2900)
    c.condition("alcohol-abuse", onset=2400, clinical="resolved", abated=1500)
    c.condition("essential-hypertension", onset=2000)
    # Treatment courses: drug, oral daily dose, first and last day (days before the anchor).
    courses = [
        ("sertraline-100", 100, 2880, 2160),  # responded, then remission: adequate, not failed
        ("escitalopram-20", 20, 1100, 960),  # SSRI, failed (PHQ-9 stays 18-20)
        ("duloxetine-60", 60, 900, 700),  # SNRI, failed
        ("nortriptyline-25", 25, 650, 500),  # TCA below the 50 mg floor: not adequate
        ("mirtazapine-15", 15, 480, 40),  # NaSSA, failed
    ]
    for drug, dose, start, end in courses:
        c.prescriptions(drug, dose, start=start, end=end)
    c.prescriptions("bupropion-xl-300", 300, start=21)

    def phq_at(t: int) -> int:
        """PHQ-9 on day t: a response to sertraline, remission, then failed courses stuck at 18-20."""
        if t > 2880:
            return 20
        if t > 2760:  # first four months of sertraline: 20 falling to 6
            return round(20 - 14 * (2880 - t) / 120)
        if t > 1130:  # remission on and after sertraline
            return rng.choice((4, 5, 6))
        return rng.choice((18, 19, 20))

    for t in range(2890, 20, -30):
        c.bp(t, rng.randint(114, 134), rng.randint(70, 84))
        c.weight(t + 2, round(78 + rng.random() * 6, 1))
        c.phq9(t + 1, phq_at(t))
    c.bp(1800, 152, 96)  # an old high reading: only the latest counts
    c.phq9(10, 19).bp(7, 124, 80).weight(7, 82)


SPECS: list[Spec] = [
    # --- the clean patients ---------------------------------------------------------------------------------
    Spec(
        "eligible-mdd-iv",
        "48-year-old man with recurrent severe MDD; sertraline 100 mg and venlafaxine XR 150 mg each failed after "
        "12+ weeks (PHQ-9 barely moved); bupropion XL started 3 weeks ago; PHQ-9 19; BP 122/78; 80 kg. "
        "Ordered IV ketamine 40 mg (0.5 mg/kg) over 40 minutes twice weekly: everything is in order.",
        trd_history,
        [SUMMARY],
        covers=["eligibility-summary", "clean", "boundary:trd-2-adequate-trials", "boundary:dose-0.5-mg-per-kg",
                "boundary:infusion-40-min"],
        person=person("Daniel", "Okafor", "male", "1977-05-14"),
    ),
    Spec(
        "eligible-esketamine-56mg",
        "44-year-old woman, same TRD history, ordered Spravato 56 mg intranasal twice weekly; urine hCG negative "
        "last week. First session of a course at the labelled 56 mg: only the summary (REMS is its monitoring line).",
        lambda c: trd_history(c).hcg(6, positive=False),
        [SUMMARY],
        template="esketamine-56mg",
        covers=["rems-summary-line", "clean", "negative-hcg"],
        person=person("Maria", "Lindqvist", "female", "1981-08-02"),
    ),
    Spec(
        "eligible-iv-35mg-70kg",
        "52-year-old woman, 70 kg, TRD history, ordered IV ketamine 35 mg (exactly 0.5 mg/kg) over 40 minutes.",
        lambda c: trd_history(c, weight_kg=70).hcg(3, positive=False),
        [SUMMARY],
        template="iv-ketamine-35mg-40min",
        covers=["clean"],
        person=person("Grace", "Moreau", "female", "1973-03-19"),
    ),
    Spec(
        "long-history-eight-years",
        "56-year-old man with eight years of records: sertraline worked for two years, then escitalopram, "
        "duloxetine and mirtazapine failed (a nortriptyline course stayed below the antidepressant dose). "
        "Monthly vitals and PHQ-9, refill-by-refill prescriptions only, an old 152/96 reading, resolved alcohol "
        "abuse, treated hypertension. Now eligible: only the summary.",
        long_history,
        [SUMMARY],
        covers=["long-history", "mess:medicationrequest-only", "mess:successive-refills"],
        person=person("Samuel", "Brandt", "male", "1969-10-09"),
    ),
    Spec(
        "mess-eligible-real-feed",
        "Eligible 39-year-old man whose data looks like a real EHR feed: trial 1 as a MedicationStatement with a "
        "contained Medication, trial 2 and the current drug as MedicationRequests pointing at Medication resources, "
        "the MDD Condition without verificationStatus, a legacy 55284-4 BP panel, weight 176 lb, PHQ-9 as "
        "valueInteger, a refuted bipolar II diagnosis, and a draft order whose drug is a contained Medication.",
        lambda c: mess_eligible(c),
        [SUMMARY],
        template="iv-ketamine-contained-medication",
        covers=["mess:medicationReference", "mess:missing-verificationStatus", "mess:legacy-bp-panel",
                "mess:weight-lb", "mess:phq9-valueInteger", "mess:refuted", "mess:product-rxnorm"],
        notes="176 [lb_av] = 79.8 kg; the order is 40 mg = 0.501 mg/kg (inside the 5% tolerance). Reading lb as kg "
        "would give 0.23 mg/kg and a dose card.",
        person=person("Tomas", "Reyes", "male", "1986-12-01"),
    ),
    # --- real-feed shapes (issue 14, real-feeds): what real EHR and device feeds send, §0 and §10. Only shapes
    # that are valid FHIR (a server must accept the bundle); the others (times without an offset, another
    # patient's records, duplicates) are tested in tests/realfeeds/test_realfeeds_shapes.py ---
    Spec(
        "real-feed-future-readings",
        "A BP cuff whose clock runs weeks ahead filed twelve normal readings dated in the future; yesterday's real "
        "reading was 171/104. The future readings are set aside before the newest-ten cap, so 171/104 counts.",
        lambda c: real_feed_future(trd_history(c, bp=(124, 78), bp_day=20)),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["real-feed:future-readings-before-the-cap", "hypertension-uncontrolled"],
        person=person("Pavel", "Novak", "male", "1968-07-30"),
    ),
    Spec(
        "real-feed-bp-as-text",
        "Yesterday's BP arrives as a BP panel with valueString '160/100 mmHg' and no components.",
        lambda c: real_feed_bp_text(trd_history(c, bp=(124, 78), bp_day=20), 1, "160/100 mmHg"),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["real-feed:bp-valueString", "boundary:bp-160-100"],
        person=person("Grace", "Owusu", "female", "1983-10-19"),
    ),
    Spec(
        "real-feed-bp-decimals-159.5",
        "A device sends BP with decimals: 159.5/99.4. Rounded half up to whole mmHg it is 160/99: at the hold line.",
        lambda c: real_feed_bp(trd_history(c, bp=None), 2, 159.5, 99.4),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["real-feed:bp-decimals", "boundary:bp-159.5-rounds-to-160"],
        person=person("Hugo", "Lindqvist", "male", "1974-03-08"),
    ),
    Spec(
        "real-feed-bp-decimals-90.2965",
        "A synthetic feed sends BP 135.4/90.2965. Rounded to whole mmHg it is 135/90: not above 140/90, no card "
        "(read raw, a diastolic of 90.2965 would have raised one).",
        lambda c: real_feed_bp(trd_history(c, bp=None), 2, 135.4, 90.2965),
        [SUMMARY],
        covers=["real-feed:bp-decimals", "boundary:bp-90.2965-rounds-to-90"],
        person=person("Aiko", "Tanaka", "female", "1985-12-24"),
    ),
    Spec(
        "real-feed-madrs-item",
        "Two days ago the clinic filed one MADRS item ('MADRS item 1 - apparent sadness' = 3) under a local code, "
        "after a PHQ-9 of 19. An item is not a MADRS total: the PHQ-9 decides severity.",
        lambda c: trd_history(c).named_score(2, "MADRS item 1 - apparent sadness", 3, "MADRS-1"),
        [SUMMARY],
        covers=["real-feed:score-item-not-total", "boundary:madrs-item-vs-total"],
        person=person("Lena", "Hoffmann", "female", "1980-08-02"),
    ),
    Spec(
        "real-feed-phq9-exam-category",
        "The latest PHQ-9 (19, ten days ago) was filed with category 'exam', not 'survey': found by its code.",
        lambda c: real_feed_phq9(trd_history(c, latest_phq9=None), 10, 19, "exam"),
        [SUMMARY],
        covers=["real-feed:phq9-other-category", "prefetch:scores-by-code"],
        person=person("Samuel", "Adeyemi", "male", "1976-01-15"),
    ),
    Spec(
        "real-feed-sandbox-reason-object",
        "The CDS Hooks sandbox sends the order's reasonCode as one object, not a list: CRPS, in a patient who also "
        "has MDD with no antidepressant trials. Read as one reason, the indication is chronic pain.",
        lambda c: plain_vitals(
            c.condition("crps-right-upper", onset=500).condition("mdd-recurrent-severe", onset=300), 75
        ),
        [SUMMARY, ("chronic-pain-evidence", INFO)],
        template="iv-ketamine-pain-infusion",
        params={"reason_object": coding(CONDITIONS["crps-right-upper"])},
        covers=["real-feed:lone-reasonCode", "chronic-pain-evidence", "indication-reasonCode"],
        person=person("Olga", "Petrova", "female", "1972-06-21"),
    ),
    Spec(
        "medication-requests-only",
        "47-year-old woman whose EHR exposes only MedicationRequest: citalopram 20 mg (SSRI) for 4 months and "
        "duloxetine 60 mg (SNRI) for 5 months, both with no PHQ-9 change, now on fluoxetine 20 mg for 3 weeks "
        "(active order). No MedicationStatement at all.",
        lambda c: (
            c.condition("mdd-snomed", onset=900),
            c.phq9(430, 20), c.prescriptions("citalopram-20", 20, start=420, end=300), c.phq9(305, 19),
            c.phq9(250, 22), c.prescriptions("duloxetine-60", 60, start=240, end=90), c.phq9(95, 21),
            c.prescriptions("fluoxetine-20", 20, start=21), c.phq9(9, 20), c.bp(5, 128, 82), c.weight(5, 64),
            c.hcg(5, positive=False),
        ),
        [SUMMARY],
        covers=["mess:medicationrequest-only", "mess:snomed-condition"],
        person=person("Ayesha", "Karim", "female", "1978-04-22"),
    ),
    # --- non-ketamine order ---------------------------------------------------------------------------------
    Spec(
        "non-ketamine-order",
        "The eligible TRD patient's clinician orders sertraline 50 mg instead: no ketamine order, no cards.",
        trd_history,
        [],
        template="oral-sertraline-50mg",
        covers=["no-ketamine-order"],
        person=person("Henry", "Walsh", "male", "1970-01-30"),
    ),
    # --- 1. Indication and treatment resistance ---------------------------------------------------------------
    Spec(
        "trd-one-adequate-trial",
        "Second antidepressant stayed at venlafaxine XR 37.5 mg (floor 75 mg): only one adequate failed trial.",
        lambda c: trd_history(c, second=("venlafaxine-xr-37.5", 37.5)),
        [SUMMARY, ("trd-criteria-unmet", WARNING)],
        covers=["trd-criteria-unmet", "boundary:trd-1-adequate-trial"],
        person=person("Olivia", "Grant", "female", "1984-09-11"),
    ),
    Spec(
        "trd-same-class-trials",
        "Sertraline then escitalopram 20 mg, both adequate and failed, but both SSRIs: the catalogue requires "
        "two different mechanism classes by default, so only one trial counts.",
        lambda c: trd_history(c, second=("escitalopram-20", 20)),
        [SUMMARY, ("trd-criteria-unmet", WARNING)],
        covers=["trd-criteria-unmet", "trd-distinct-classes"],
        person=person("Liam", "Novak", "male", "1990-02-17"),
    ),
    Spec(
        "trd-partial-response",
        "Venlafaxine took PHQ-9 from 21 to 15 (29% better): a partial response, not a failure; one failed trial.",
        lambda c: trd_history(c, second_scores=(21, 15)),
        [SUMMARY, ("trd-criteria-unmet", WARNING)],
        covers=["trd-criteria-unmet", "trd-partial-response"],
        person=person("Chloe", "Baptiste", "female", "1987-07-07"),
    ),
    Spec(
        "no-concurrent-antidepressant",
        "Two failed trials, then stopped all antidepressants; ketamine would be monotherapy.",
        lambda c: trd_history(c, current=None),
        [SUMMARY, ("antidepressant-not-concurrent", WARNING)],
        covers=["antidepressant-not-concurrent"],
        person=person("Noah", "Fischer", "male", "1975-11-25"),
    ),
    Spec(
        "severity-phq9-14",
        "Latest PHQ-9 (10 days ago) is 14: moderate, below the moderately-severe line of 15.",
        lambda c: trd_history(c, latest_phq9=14),
        [SUMMARY, ("depression-severity-insufficient", WARNING)],
        covers=["depression-severity-insufficient", "boundary:phq9-14"],
        person=person("Emma", "Castillo", "female", "1983-01-05"),
    ),
    Spec(
        "severity-phq9-15-integer",
        "Latest PHQ-9 is exactly 15, sent as valueInteger: moderately severe, no severity card.",
        lambda c: trd_history(c, latest_phq9=15, phq9_integer=True),
        [SUMMARY],
        covers=["boundary:phq9-15", "mess:phq9-valueInteger"],
        person=person("Lucas", "Petrov", "male", "1979-06-30"),
    ),
    Spec(
        "severity-undocumented",
        "No PHQ-9, MADRS or HAM-D in the last 30 days (the latest PHQ-9 is 45 days old).",
        lambda c: trd_history(c, latest_phq9_day=45),
        [SUMMARY, DATA],
        covers=["pre-dose-data-missing", "boundary:score-45-days"],
        person=person("Sofia", "Almeida", "female", "1992-10-12"),
    ),
    Spec(
        "indication-undocumented",
        "61-year-old man with no psychiatric diagnosis on the problem list and no reason on the order.",
        lambda c: plain_vitals(c.condition("essential-hypertension", onset=1000)),
        [SUMMARY, ("indication-undocumented", WARNING)],
        covers=["indication-undocumented"],
        notes="No depression indication, so the TRD, severity and concurrent-antidepressant rules (section 1, "
        "'depression only') do not apply.",
        person=person("George", "Hale", "male", "1964-08-08"),
    ),
    # --- 2. Bipolar -----------------------------------------------------------------------------------------
    Spec(
        "bipolar-no-mood-stabilizer",
        "Bipolar I, current episode depressed, on bupropion with no mood stabiliser (TRD history as above).",
        lambda c: trd_history(c, dx="bipolar-depressed-severe"),
        [SUMMARY, ("bipolar-mood-stabilizer-missing", CRITICAL)],
        covers=["bipolar-mood-stabilizer-missing"],
        notes="The TRD history and current antidepressant keep section 1 silent whether or not the engine treats "
        "bipolar depression as 'depression'.",
        person=person("Isabella", "Romano", "female", "1988-05-05"),
    ),
    Spec(
        "bipolar-lamotrigine-only",
        "Bipolar depression covered only by lamotrigine 200 mg.",
        lambda c: trd_history(c, dx="bipolar-depressed-severe").statement("lamotrigine-200", 200, start=700),
        [SUMMARY, ("bipolar-mood-stabilizer-nonstandard", WARNING)],
        covers=["bipolar-mood-stabilizer-nonstandard"],
        notes="Read as 'nonstandard' only: the 'missing' card is for no mood stabiliser at all (section 2).",
        person=person("Ethan", "Murphy", "male", "1985-03-03"),
    ),
    Spec(
        "bipolar-on-lithium",
        "Bipolar depression on lithium carbonate 300 mg three times daily for two years: no bipolar card.",
        lambda c: trd_history(c, dx="bipolar-depressed-severe").statement("lithium-300", 900, start=730),
        [SUMMARY],
        covers=["bipolar-standard-stabilizer"],
        person=person("Mia", "Schneider", "female", "1982-12-12"),
    ),
    # --- 3. Contraindications -------------------------------------------------------------------------------
    Spec(
        "bp-159-99",
        "Latest BP 159/99: above 140/90 but under the 160/100 hold line.",
        lambda c: trd_history(c, bp=(159, 99)),
        [SUMMARY, ("hypertension-elevated", WARNING)],
        covers=["hypertension-elevated", "boundary:bp-159-99"],
        person=person("Jack", "Kowalski", "male", "1972-02-02"),
    ),
    Spec(
        "bp-160-100",
        "Latest BP 160/100: at the hold line.",
        lambda c: trd_history(c, bp=(160, 100)),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["hypertension-uncontrolled", "boundary:bp-160-100"],
        person=person("Ava", "Jensen", "female", "1971-09-09"),
    ),
    Spec(
        "bp-140-90",
        "Latest BP exactly 140/90: not above 140/90, no BP card.",
        lambda c: trd_history(c, bp=(140, 90)),
        [SUMMARY],
        covers=["boundary:bp-140-90"],
        person=person("Leo", "Hoffmann", "male", "1980-04-04"),
    ),
    Spec(
        "bp-141-90",
        "Latest BP 141/90: systolic just above 140.",
        lambda c: trd_history(c, bp=(141, 90)),
        [SUMMARY, ("hypertension-elevated", WARNING)],
        covers=["hypertension-elevated", "boundary:bp-141-90"],
        person=person("Zoe", "Martin", "female", "1989-11-11"),
    ),
    Spec(
        "bp-separate-observations-170-104",
        "BP sent as two separate Observations (8480-6 = 170, 8462-4 = 104) a day ago; an older normal panel.",
        lambda c: trd_history(c, bp=(124, 80), bp_day=20).bp_separate(1, 170, 104),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["hypertension-uncontrolled", "mess:separate-bp-observations"],
        person=person("Oscar", "Lindgren", "male", "1966-07-17"),
    ),
    Spec(
        "hypertensive-urgency-condition",
        "Seen in the ED for hypertensive urgency two weeks ago (active Condition); today's BP 132/84.",
        lambda c: trd_history(c, bp=(132, 84)).condition("hypertensive-urgency", onset=14),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["hypertension-uncontrolled", "hypertensive-crisis-condition"],
        person=person("Ruby", "Adams", "female", "1968-06-06"),
    ),
    Spec(
        "bp-undocumented",
        "The only BP is 45 days old.",
        lambda c: trd_history(c, bp_day=45),
        [SUMMARY, DATA],
        covers=["pre-dose-data-missing", "boundary:bp-45-days"],
        person=person("Max", "Dubois", "male", "1991-01-21"),
    ),
    Spec(
        "psychosis-mdd-psychotic-features",
        "Recurrent MDD, current episode severe with psychotic symptoms (F33.3, active).",
        lambda c: trd_history(c, dx="mdd-recurrent-psychotic"),
        [SUMMARY, ("psychosis", CRITICAL)],
        covers=["psychosis", "psychotic-features"],
        person=person("Ella", "Nakamura", "female", "1976-10-10"),
    ),
    Spec(
        "psychosis-resolved-history",
        "Brief psychotic disorder nine years ago, resolved; now recurrent MDD without psychosis.",
        lambda c: trd_history(c).condition("brief-psychotic", onset=3400, clinical="resolved", abated=3300),
        [SUMMARY, ("psychosis", WARNING)],
        covers=["psychosis", "psychosis-inactive-warning"],
        person=person("Felix", "Wagner", "male", "1983-08-18"),
    ),
    Spec(
        "entered-in-error-records",
        "A schizophrenia diagnosis and a 182/112 BP reading were both charted on the wrong patient and marked "
        "entered-in-error, plus an entered-in-error ketamine administration: all must be ignored.",
        lambda c: (
            trd_history(c)
            .condition("schizophrenia", onset=60, verification="entered-in-error")
            .bp(2, 182, 112, status="entered-in-error")
            .administration(5, 40, status="entered-in-error")
        ),
        [SUMMARY],
        covers=["mess:entered-in-error"],
        person=person("Nora", "Eriksen", "female", "1987-02-27"),
    ),
    Spec(
        "ketamine-misuse-remote",
        "Ketamine dependence in his twenties, resolved for ten years: still a contraindication (any status).",
        lambda c: trd_history(c).condition("ketamine-dependence", onset=5000, clinical="resolved", abated=3650),
        [SUMMARY, ("ketamine-misuse-history", CRITICAL)],
        covers=["ketamine-misuse-history"],
        notes="Resolved, so not an active substance use disorder: no substance-use-disorder card.",
        person=person("Adam", "Clarke", "male", "1986-05-29"),
    ),
    Spec(
        "alcohol-use-disorder-active",
        "Active alcohol dependence alongside TRD.",
        lambda c: trd_history(c).condition("alcohol-dependence", onset=800),
        [SUMMARY, ("substance-use-disorder", WARNING)],
        covers=["substance-use-disorder"],
        person=person("Hannah", "Price", "female", "1979-12-03"),
    ),
    Spec(
        "heart-failure",
        "Heart failure (active) and treated essential hypertension with a normal BP.",
        lambda c: trd_history(c).condition("heart-failure", onset=300).condition("essential-hypertension", onset=2000),
        [SUMMARY, ("cardiovascular-disease", WARNING)],
        covers=["cardiovascular-disease"],
        notes="Essential hypertension alone is not in the cardiovascular-disease list. Version 2: chronic or "
        "unspecified heart failure (I50.9) that is not resolved is a warning.",
        person=person("Walter", "Becker", "male", "1961-04-14"),
    ),
    Spec(
        "cirrhosis",
        "Cirrhosis of the liver (active).",
        lambda c: trd_history(c).condition("cirrhosis", onset=500),
        [SUMMARY, ("hepatic-impairment", WARNING)],
        covers=["hepatic-impairment"],
        person=person("Paul", "Svensson", "male", "1965-09-23"),
    ),
    Spec(
        "hydrocephalus",
        "Hydrocephalus (active, shunted last year).",
        lambda c: trd_history(c).condition("hydrocephalus", onset=400),
        [SUMMARY, ("intracranial-pressure", CRITICAL)],
        covers=["intracranial-pressure"],
        person=person("Lily", "Horvat", "female", "1990-03-08"),
    ),
    Spec(
        "glaucoma-no-verification-status",
        "Open-angle glaucoma on the problem list without a verificationStatus (treat as confirmed).",
        lambda c: trd_history(c).condition("glaucoma-open-angle", onset=600, verification=None),
        [SUMMARY, ("intraocular-pressure", WARNING)],
        covers=["intraocular-pressure", "mess:missing-verificationStatus"],
        person=person("Arthur", "Dunn", "male", "1962-11-30"),
    ),
    Spec(
        "pregnancy-positive-hcg",
        "32-year-old woman with a positive urine hCG four days ago.",
        lambda c: trd_history(c, weight_kg=66).hcg(4, positive=True),
        [SUMMARY, ("pregnancy", CRITICAL)],
        covers=["pregnancy", "pregnancy-test"],
        person=person("Julia", "Santos", "female", "1993-06-16"),
    ),
    Spec(
        "pregnancy-condition",
        "29-year-old woman with an active pregnancy on the problem list (no hCG result in the record).",
        lambda c: trd_history(c, weight_kg=70).condition("pregnancy", onset=50),
        [SUMMARY, ("pregnancy", CRITICAL)],
        covers=["pregnancy", "pregnancy-condition"],
        person=person("Amara", "Osei", "female", "1996-09-01"),
    ),
    # --- 4. IV dose -----------------------------------------------------------------------------------------
    Spec(
        "weight-undocumented",
        "Last weight 120 days ago; IV ketamine 40 mg ordered: the mg/kg dose cannot be checked.",
        lambda c: trd_history(c, weight_day=120),
        [SUMMARY, DATA],
        template="iv-ketamine-fixed-dose",
        covers=["pre-dose-data-missing", "boundary:weight-120-days"],
        person=person("Victor", "Lambert", "male", "1974-07-27"),
    ),
    Spec(
        "weight-85-days",
        "Weight 80 kg recorded 85 days ago (inside the 90-day window); standard 40 mg ordered.",
        lambda c: trd_history(c, weight_day=85),
        [SUMMARY],
        template="iv-ketamine-fixed-dose",
        covers=["boundary:weight-85-days"],
        person=person("Clara", "Weiss", "female", "1984-01-19"),
    ),
    Spec(
        "dose-0.526-mg-per-kg",
        "95 kg, IV ketamine 50 mg over 40 min = 0.526 mg/kg: just over the 0.5 mg/kg + 5% tolerance.",
        lambda c: trd_history(c, weight_kg=95),
        [SUMMARY, ("dose-above-standard", WARNING)],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 50},
        covers=["dose-above-standard", "rewrite-on-card", "boundary:dose-0.526-mg-per-kg"],
        person=person("Bruno", "Costa", "male", "1978-08-28"),
    ),
    Spec(
        "dose-anesthetic-1.0-mg-per-kg",
        "80 kg, IV ketamine 80 mg over 40 min = 1.0 mg/kg: anaesthetic range.",
        lambda c: trd_history(c),
        [SUMMARY, ("dose-anesthetic-range", CRITICAL)],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 80},
        covers=["dose-anesthetic-range", "rewrite-on-card", "boundary:dose-1.0-mg-per-kg"],
        person=person("Ivan", "Horak", "male", "1982-10-02"),
    ),
    Spec(
        "dose-below-range",
        "80 kg, IV ketamine 7 mg = 0.0875 mg/kg: below every studied dose.",
        lambda c: trd_history(c),
        [SUMMARY, ("dose-below-range", WARNING)],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 7},
        covers=["dose-below-range", "rewrite-on-card"],
        person=person("Elena", "Popescu", "female", "1980-05-15"),
    ),
    Spec(
        "infusion-39-minutes",
        "80 kg, 40 mg (0.5 mg/kg) over 39 minutes: under the 40-minute standard.",
        lambda c: trd_history(c),
        [SUMMARY, ("infusion-too-fast", WARNING)],
        template="iv-ketamine-standard",
        params={"duration_min": 39},
        covers=["infusion-too-fast", "rewrite-on-card", "boundary:infusion-39-min"],
        person=person("Anton", "Berg", "male", "1976-02-14"),
    ),
    Spec(
        "frequency-4-per-week",
        "Standard dose ordered four times a week.",
        lambda c: trd_history(c),
        [SUMMARY, ("frequency-above-protocol", WARNING)],
        template="iv-ketamine-standard",
        params={"frequency_per_week": 4},
        covers=["frequency-above-protocol"],
        notes="The frequency card carries the one-click rewrite (to twice weekly; dose and time already standard).",
        person=person("Freya", "Holm", "female", "1985-04-25"),
    ),
    Spec(
        "frequency-3-per-week",
        "Standard dose ordered three times a week (the upper acute-phase schedule).",
        lambda c: trd_history(c),
        [SUMMARY],
        template="iv-ketamine-standard",
        params={"frequency_per_week": 3},
        covers=["boundary:frequency-3-per-week"],
        person=person("Erik", "Solberg", "male", "1979-09-29"),
    ),
    # --- 5. Esketamine --------------------------------------------------------------------------------------
    Spec(
        "esketamine-84mg",
        "Spravato 84 mg twice weekly at the third session of a course (56 mg 7 and 3 days ago): top of the labelled "
        "range.",
        lambda c: esketamine_sessions(trd_history(c, weight_kg=None), 7, 3),
        [SUMMARY],
        template="esketamine-84mg",
        covers=["boundary:esketamine-84mg", "esketamine-no-weight-needed", "boundary:esketamine-84mg-prior-session"],
        notes="No weight in the record: weight rules are IV-only (section 4). A prior session in the last 8 weeks: "
        "84 mg is allowed from the second session (section 5).",
        person=person("Robert", "Young", "male", "1974-12-20"),
    ),
    Spec(
        "esketamine-85mg",
        "Spravato 85 mg per session ordered: above the 84 mg maximum.",
        lambda c: trd_history(c),
        [SUMMARY, ("esketamine-dose-high", CRITICAL)],
        template="esketamine-85mg",
        covers=["esketamine-dose-high", "boundary:esketamine-85mg"],
        person=person("Karen", "Doyle", "female", "1972-03-13"),
    ),
    Spec(
        "esketamine-28mg-age-64",
        "64-year-old woman started on Spravato 28 mg: 56-84 mg is superior below 65.",
        lambda c: trd_history(c).hcg(6, positive=False),
        [SUMMARY, ("esketamine-dose-low", WARNING)],
        template="esketamine-28mg",
        covers=["esketamine-dose-low", "boundary:age-64"],
        person=person("Linda", "Foster", "female", "1961-07-01"),
    ),
    Spec(
        "esketamine-28mg-age-65",
        "65-year-old man started on Spravato 28 mg: the labelled start for 65 and over (info only).",
        lambda c: trd_history(c),
        [SUMMARY, ("esketamine-dose-low", INFO)],
        template="esketamine-28mg",
        covers=["esketamine-dose-low", "boundary:age-65"],
        person=person("Richard", "Palmer", "male", "1960-07-01"),
    ),
    # --- 6. Course ------------------------------------------------------------------------------------------
    Spec(
        "course-nonresponse-two-infusions",
        "Two 40 mg infusions (10 and 6 days ago); PHQ-9 20 before the course, 18 two days ago.",
        lambda c: (
            trd_history(c, latest_phq9=20, latest_phq9_day=12).administration(10, 40).administration(6, 40).phq9(2, 18)
        ),
        [SUMMARY, ("nonresponse-after-infusions", WARNING)],
        covers=["nonresponse-after-infusions", "boundary:two-infusions"],
        person=person("Simon", "Keller", "male", "1981-11-06"),
    ),
    Spec(
        "course-one-infusion",
        "One completed infusion 6 days ago (a second was entered in error); PHQ-9 20 before, 19 after.",
        lambda c: (
            trd_history(c, latest_phq9=20, latest_phq9_day=12)
            .administration(9, 40, status="entered-in-error")
            .administration(6, 40)
            .phq9(2, 19)
        ),
        [SUMMARY],
        covers=["boundary:one-infusion", "mess:entered-in-error"],
        person=person("Alice", "Moretti", "female", "1986-06-23"),
    ),
    Spec(
        "course-six-infusions-nonresponder",
        "Six infusions over three weeks; PHQ-9 22 before, 16 now (27% better): acute course complete and no "
        "response.",
        lambda c: course_six(c, 16),
        [SUMMARY, ("nonresponse-after-infusions", WARNING), ("acute-course-complete", INFO)],
        covers=["acute-course-complete", "nonresponse-after-infusions"],
        person=person("Martin", "Kovac", "male", "1977-01-08"),
    ),
    Spec(
        "course-six-infusions-responder",
        "Six infusions over three weeks; PHQ-9 22 before, 9 now (59% better): plan maintenance or stop.",
        lambda c: course_six(c, 9),
        [SUMMARY, ("acute-course-complete", INFO)],
        covers=["acute-course-complete"],
        notes="Severity is judged on the pre-course baseline while a course is under way (PHQ-9 22 before the "
        "first infusion: moderately severe, seed 000 'before initiating'), so the responder's current PHQ-9 of 9 "
        "does not raise depression-severity-insufficient at every infusion; the checklist shows both scores.",
        person=person("Sara", "Lindahl", "female", "1983-03-27"),
    ),
    # --- 7. Indication-specific ------------------------------------------------------------------------------
    Spec(
        "crps-pain",
        "Complex regional pain syndrome of the right arm after a wrist fracture; no depression; order gives "
        "CRPS as the reason.",
        lambda c: plain_vitals(c.condition("crps-right-upper", onset=500), 72),
        [SUMMARY, ("chronic-pain-evidence", INFO)],
        params={"reason": coding(CONDITIONS["crps-right-upper"])},
        template="iv-ketamine-pain-infusion",
        covers=["chronic-pain-evidence", "indication-reasonCode"],
        person=person("Diego", "Fernandez", "male", "1975-05-05"),
    ),
    Spec(
        "fibromyalgia-pain",
        "Fibromyalgia (other chronic pain, grade D evidence) as the only indication.",
        lambda c: plain_vitals(c.condition("fibromyalgia", onset=1500), 68).hcg(5, positive=False),
        [SUMMARY, ("chronic-pain-evidence", WARNING)],
        template="iv-ketamine-pain-infusion",
        covers=["chronic-pain-evidence"],
        person=person("Helen", "Brooks", "female", "1974-10-31"),
    ),
    Spec(
        "ptsd-only",
        "Chronic PTSD (veteran) as the only indication, ordered 0.5 mg/kg over 40 minutes.",
        lambda c: plain_vitals(c.condition("ptsd-chronic", onset=2000), 88),
        [SUMMARY, ("ptsd-evidence", INFO)],
        params={"reason": coding(CONDITIONS["ptsd-chronic"])},
        covers=["ptsd-evidence"],
        person=person("Marcus", "Hill", "male", "1984-03-01"),
    ),
    Spec(
        "suicidal-ideation",
        "Eligible TRD patient with active suicidal ideation recorded three days ago.",
        lambda c: trd_history(c).condition("suicidal-ideation", onset=3),
        [SUMMARY, ("suicidal-ideation", INFO)],
        covers=["suicidal-ideation"],
        person=person("Jonas", "Richter", "male", "1994-08-14"),
    ),
    # --- more of the real-feed mess ---------------------------------------------------------------------------
    Spec(
        "antidepressant-name-only",
        "Current antidepressant recorded under the clinic's local drug code; only its name says venlafaxine. "
        "The earlier trials are coded as usual.",
        lambda c: trd_history(c, current=None).statement(
            "venlafaxine-xr-150", 150, start=21,
            concept={"coding": [{"system": "urn:oid:2.16.840.1.113883.3.9999.7", "code": "VEN-ER-150",
                                 "display": "Venlafaxine ER 150 mg capsule"}], "text": "Venlafaxine ER 150 mg capsule"},
        ),
        [SUMMARY],
        covers=["mess:name-only-medication"],
        notes="Section 10: fall back to the ingredient name; the card may say it was recognised by name only.",
        person=person("Yusuf", "Demir", "male", "1980-06-06"),
    ),
    Spec(
        "esketamine-ndc-coded",
        "Spravato 56 mg ordered by its dose-kit NDC only (no RxNorm coding).",
        trd_history,
        [SUMMARY],
        template="esketamine-56mg-ndc",
        covers=["mess:ndc-product-code"],
        person=person("Rachel", "Stone", "male", "1975-02-11"),
    ),
    Spec(
        "madrs-local-code-30",
        "No PHQ-9 for six weeks, but a clinician-rated MADRS of 30 eight days ago, under a local code with the "
        "instrument's name in code.text.",
        lambda c: trd_history(c, latest_phq9_day=45).named_score(8, "MADRS total score", 30, "MADRS-T"),
        [SUMMARY],
        covers=["mess:madrs-by-name", "boundary:madrs-30"],
        person=person("Peter", "Olsen", "male", "1968-09-17"),
    ),
    Spec(
        "madrs-local-code-19",
        "Latest severity score is a MADRS of 19 (mild) four days ago, after a PHQ-9 of 19 ten days ago.",
        lambda c: trd_history(c).named_score(4, "MADRS total score", 19, "MADRS-T"),
        [SUMMARY, ("depression-severity-insufficient", WARNING)],
        covers=["depression-severity-insufficient", "mess:madrs-by-name", "boundary:madrs-19"],
        person=person("Ingrid", "Berglund", "female", "1979-12-24"),
    ),
    Spec(
        "weight-in-grams",
        "Weight recorded by the scale interface in grams (80000 g); 40 mg ordered.",
        lambda c: trd_history(c, weight_kg=None).weight(6, 80000, "g"),
        [SUMMARY],
        covers=["mess:weight-grams"],
        person=person("Hugo", "Laurent", "male", "1982-03-15"),
    ),
    Spec(
        "iv-rate-60mg-per-h",
        "40 mg (0.5 mg/kg) ordered with a rate of 60 mg/h and no duration: 40 minutes.",
        trd_history,
        [SUMMARY],
        template="iv-ketamine-rate",
        covers=["mess:duration-from-rate"],
        person=person("Milan", "Novotny", "male", "1977-07-07"),
    ),
    Spec(
        "iv-rate-120mg-per-h",
        "40 mg (0.5 mg/kg) at 120 mg/h: the infusion would run 20 minutes.",
        trd_history,
        [SUMMARY, ("infusion-too-fast", WARNING)],
        template="iv-ketamine-rate",
        params={"rate_mg_per_h": 120},
        covers=["infusion-too-fast", "mess:duration-from-rate"],
        person=person("Dorota", "Wojcik", "female", "1984-05-21"),
    ),
    Spec(
        "iv-dose-written-mg-per-kg",
        "The order is written as 0.5 mg/kg (dose unit mg/kg) over 40 minutes.",
        trd_history,
        [SUMMARY],
        template="iv-ketamine-mg-per-kg",
        covers=["mess:dose-in-mg-per-kg"],
        person=person("Andre", "Silva", "male", "1973-10-10"),
    ),
    Spec(
        "iv-no-route",
        "Ketamine 0.5 mg/kg over 40 minutes with no route on the order: read as IV.",
        trd_history,
        [SUMMARY],
        template="iv-ketamine-no-route",
        covers=["mess:order-without-route"],
        person=person("Lena", "Vogel", "female", "1987-01-13"),
    ),
    Spec(
        "depression-recurrence-status",
        "The MDD Condition's clinicalStatus is 'recurrence' (counts as active).",
        lambda c: trd_history(c, dx="mdd-snomed", dx_clinical="recurrence"),
        [SUMMARY],
        covers=["mess:clinical-status-recurrence"],
        person=person("Owen", "Reid", "male", "1990-08-30"),
    ),
    Spec(
        "pregnancy-past",
        "Delivered two months ago: pregnancy Condition resolved, the positive hCG is ten months old, a negative "
        "hCG three days ago.",
        lambda c: (
            trd_history(c, weight_kg=72).condition("pregnancy", onset=330, clinical="resolved", abated=60)
            .hcg(320, positive=True).hcg(3, positive=False)
        ),
        [SUMMARY],
        covers=["boundary:pregnancy-resolved", "boundary:hcg-old-positive"],
        person=person("Naomi", "Afolabi", "female", "1994-04-04"),
    ),
    Spec(
        "bp-latest-normal-after-high",
        "170/105 twenty days ago, rechecked 128/80 three days ago: only the latest reading counts.",
        lambda c: trd_history(c, bp=(128, 80), bp_day=3).bp(20, 170, 105),
        [SUMMARY],
        covers=["boundary:latest-bp-counts"],
        person=person("Caleb", "Ward", "male", "1970-11-19"),
    ),
    Spec(
        "trials-without-scores",
        "Two adequate trials of different classes, but no rating scale was recorded during either; PHQ-9 19 "
        "ten days ago.",
        lambda c: trd_history(c, trial_scores=False),
        [SUMMARY],
        covers=["trd-failure-undocumented"],
        notes="Section 1: no scores = 'failure not documented by a validated scale' - it counts, the summary marks "
        "it unverified; no TRD card.",
        person=person("Eva", "Marsh", "female", "1985-09-05"),
    ),
    Spec(
        "trd-second-trial-24-days",
        "Venlafaxine XR 150 mg stopped after 24 days (side effects): shorter than 4 weeks, not adequate.",
        lambda c: trd_history(c, second_span=(330, 306)),
        [SUMMARY, ("trd-criteria-unmet", WARNING)],
        covers=["trd-criteria-unmet", "boundary:trial-24-days"],
        person=person("Theo", "Janssen", "male", "1988-12-08"),
    ),
    # --- indication routing and more edges ---------------------------------------------------------------------
    Spec(
        "indication-reason-code-only",
        "Nothing on the problem list; the order's reasonCode says recurrent severe MDD. TRD history as usual.",
        lambda c: trd_history(c, dx=None),
        [SUMMARY],
        params={"reason": coding(CONDITIONS["mdd-recurrent-severe"])},
        covers=["indication-reasonCode"],
        person=person("Kofi", "Mensah", "male", "1983-07-19"),
    ),
    Spec(
        "depression-with-ptsd",
        "Recurrent MDD and chronic PTSD, no reason on the order: depression outranks PTSD as the indication.",
        lambda c: trd_history(c).condition("ptsd-chronic", onset=2500),
        [SUMMARY],
        covers=["indication-priority"],
        notes="Section 0: inferred indication depression > PTSD > chronic pain. Section 7's evidence cards are for "
        "the indication, so no ptsd-evidence card.",
        person=person("Daria", "Volkova", "female", "1982-02-08"),
    ),
    Spec(
        "crps-reason-with-untreated-mdd",
        "Ordered for CRPS (reasonCode) in a patient who also has MDD with no antidepressant trials: the order's "
        "reason decides the indication, so the depression rules do not apply.",
        lambda c: plain_vitals(
            c.condition("crps-right-upper", onset=500).condition("mdd-recurrent-severe", onset=300), 75
        ),
        [SUMMARY, ("chronic-pain-evidence", INFO)],
        params={"reason": coding(CONDITIONS["crps-right-upper"])},
        template="iv-ketamine-pain-infusion",
        covers=["chronic-pain-evidence", "indication-reasonCode", "indication-priority"],
        notes="Section 0: reasonCode first; section 1 applies to depression only.",
        person=person("Mateo", "Ruiz", "male", "1971-04-12"),
    ),
    Spec(
        "hallucinogen-dependence-active",
        "Active hallucinogen dependence (F16.20).",
        lambda c: trd_history(c).condition("hallucinogen-dependence", onset=200),
        [SUMMARY, ("substance-use-disorder", WARNING)],
        covers=["substance-use-disorder", "hallucinogen-not-dissociative"],
        notes="Version 2: a hallucinogen use disorder with no dissociative named is substance-use-disorder "
        "(F16 without ketamine or phencyclidine), no longer ketamine-misuse-history.",
        person=person("Jasper", "Quinn", "male", "1992-05-30"),
    ),
    Spec(
        "bp-138-100-diastolic",
        "Latest BP 138/100: the diastolic alone reaches the hold line.",
        lambda c: trd_history(c, bp=(138, 100)),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["hypertension-uncontrolled", "boundary:diastolic-only"],
        person=person("Wanda", "Nowak", "female", "1969-01-27"),
    ),
    Spec(
        "trial-entered-in-error",
        "Only one real failed trial (sertraline); a venlafaxine statement was charted on the wrong patient and "
        "marked entered-in-error.",
        lambda c: (
            trd_history(c, second=("sertraline-100", 100), second_span=(30, 25))
            .statement("venlafaxine-xr-150", 150, start=330, end=190, status="entered-in-error")
        ),
        [SUMMARY, ("trd-criteria-unmet", WARNING)],
        covers=["trd-criteria-unmet", "mess:entered-in-error"],
        notes="The second 'trial' in the history is 5 days of sertraline (not adequate); only the "
        "entered-in-error venlafaxine would make a second adequate trial.",
        person=person("Greta", "Lund", "female", "1978-08-08"),
    ),
    Spec(
        "bipolar-on-divalproex",
        "Bipolar depression on divalproex ER 1000 mg/day: a standard mood stabiliser.",
        lambda c: trd_history(c, dx="bipolar-depressed-severe").statement("divalproex-er-500", 1000, start=600),
        [SUMMARY],
        covers=["bipolar-standard-stabilizer"],
        person=person("Rhys", "Evans", "male", "1987-10-03"),
    ),
]


def esketamine_sessions(c: Chart, *days_before: float, mg: float = 56) -> Chart:
    """Completed Spravato sessions ``days_before`` the anchor."""
    for t in days_before:
        c.administration(t, mg, drug="esketamine")
    return c


# === rules-v2 fixtures (clinical-rules.md v2 §0-§3, §7) ===================================================
# Boundary pairs of the new and changed rules. Each patient is eligible for IV ketamine (trd_history) but for one
# fact, so the expected cards are the summary plus the card that fact calls for. Dates are days before the
# anchor; fixture ages are set for the manifest test's clock (2026-11-23, 326 days after the anchor).
TEMPLATES.append(
    {
        "name": "ketamine-oral",
        "description": "Ketamine 50 mg by mouth twice weekly: outside the IV/intranasal rules (no dose check).",
        "parameters": {},
        "resource": {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": coding(DRUGS["ketamine"]),
            "dosageInstruction": [
                {
                    "route": ORAL_ROUTE,
                    "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
                    "doseAndRate": [{"doseQuantity": qty(50, "mg")}],
                }
            ],
        },
    }
)


def administrations(c: Chart, first: float, count: int, every: float = 7) -> Chart:
    for i in range(count):
        c.administration(first + i * every, 40)
    return c


RULES_V2_SPECS: list[Spec] = [
    # --- §0 scope, route, anaesthetic-looking order, suicidal ideation
    Spec(
        "v2-scope-procedural-sedation",
        "Ketamine ordered for procedural sedation (fracture reduction): outside psychiatry and chronic pain, no cards.",
        trd_history,
        [],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 80, "duration_min": 2, "reason": {"text": "Procedural sedation for fracture reduction"}},
        covers=["scope:out-of-scope-no-cards"],
        person=person("Peter", "Lang", "male", "1979-03-02"),
    ),
    Spec(
        "v2-anaesthetic-dose-no-reason",
        "80 kg, 80 mg (1 mg/kg) over 5 minutes and no reason on the order: looks like sedation dosing. One "
        "indication warning naming the dose, no dose card, no rewrite.",
        trd_history,
        [SUMMARY, ("indication-undocumented", WARNING)],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 80, "duration_min": 5},
        covers=["indication-undocumented", "boundary:anaesthetic-1-mg-per-kg-under-15-min"],
        person=person("Gustav", "Ek", "male", "1976-07-19"),
    ),
    Spec(
        "v2-oral-ketamine",
        "Oral ketamine 50 mg twice weekly: the rules cover IV ketamine and intranasal esketamine only; no dose card.",
        trd_history,
        [SUMMARY],
        template="ketamine-oral",
        covers=["route:oral-not-covered"],
        person=person("Irene", "Vasquez", "female", "1972-09-09"),
    ),
    Spec(
        "v2-suicidal-ideation-45-days",
        "Suicidal ideation recorded 45 days ago and still active: older than 30 days, a checklist line, no card.",
        lambda c: trd_history(c).condition("suicidal-ideation", onset=45),
        [SUMMARY],
        covers=["boundary:suicidal-ideation-31-days"],
        person=person("Moritz", "Hahn", "male", "1990-04-17"),
    ),
    Spec(
        "v2-esketamine-monotherapy",
        "TRD with no current antidepressant, Spravato 56 mg twice weekly: esketamine alone is labelled for TRD "
        "since January 2025, so the missing antidepressant is information only.",
        lambda c: trd_history(c, current=None),
        [SUMMARY, ("antidepressant-not-concurrent", INFO)],
        template="esketamine-56mg",
        covers=["antidepressant-not-concurrent", "esketamine-monotherapy-info"],
        person=person("Knut", "Aasen", "male", "1974-04-24"),
    ),
    Spec(
        "v2-esketamine-suicidal-ideation-no-antidepressant",
        "Suicidal ideation recorded five days ago, no current antidepressant, Spravato 84 mg: for the "
        "suicidal-ideation indication the label gives esketamine with an oral antidepressant, so a warning.",
        lambda c: trd_history(c, current=None).condition("suicidal-ideation", onset=5),
        [SUMMARY, ("antidepressant-not-concurrent", WARNING), ("suicidal-ideation", INFO)],
        template="esketamine-84mg",
        covers=["antidepressant-not-concurrent", "esketamine-suicidal-ideation-warning"],
        person=person("Lars", "Aasen", "male", "1976-06-26"),
    ),
    # --- §2 bipolar and mania
    Spec(
        "v2-bipolar-remission-no-stabiliser",
        "Bipolar disorder in full remission (F31.76) and recurrent MDD now, no mood stabiliser: a warning.",
        lambda c: trd_history(c).condition("bipolar-remission-depressed", onset=2000),
        [SUMMARY, ("bipolar-mood-stabilizer-missing", WARNING)],
        covers=["bipolar-mood-stabilizer-missing", "bipolar-whatever-status"],
        person=person("Helga", "Strand", "female", "1980-02-12"),
    ),
    Spec(
        "v2-cyclothymia",
        "Cyclothymic disorder alongside recurrent MDD, no mood stabiliser: a warning.",
        lambda c: trd_history(c).condition("cyclothymia", onset=1500),
        [SUMMARY, ("bipolar-mood-stabilizer-missing", WARNING)],
        covers=["bipolar-mood-stabilizer-missing", "cyclothymia"],
        person=person("Oskar", "Blom", "male", "1985-10-21"),
    ),
    Spec(
        "v2-bipolar-quetiapine",
        "Bipolar depression covered by quetiapine 200 mg only: an antimanic antipsychotic, nonstandard cover.",
        lambda c: trd_history(c, dx="bipolar-depressed-severe").statement("quetiapine-200", 200, start=400),
        [SUMMARY, ("bipolar-mood-stabilizer-nonstandard", WARNING)],
        covers=["bipolar-mood-stabilizer-nonstandard", "antipsychotic-cover"],
        person=person("Vera", "Lindholm", "female", "1983-05-30"),
    ),
    Spec(
        "v2-mania-3-weeks-on-lithium",
        "Bipolar disorder on lithium; a manic episode began three weeks ago and is still active: critical.",
        lambda c: trd_history(c, dx="bipolar-depressed-severe").statement("lithium-300", 900, start=700)
        .condition("bipolar-manic", onset=21),
        [SUMMARY, ("mania-current", CRITICAL)],
        covers=["mania-current", "boundary:mania-8-weeks"],
        person=person("Anders", "Moe", "male", "1981-01-15"),
    ),
    Spec(
        "v2-mania-undated-on-lithium",
        "Bipolar disorder on lithium; an undated manic episode is still active on the problem list: a warning.",
        lambda c: trd_history(c, dx="bipolar-depressed-severe").statement("lithium-300", 900, start=700)
        .condition("bipolar-manic", onset=None),
        [SUMMARY, ("mania-current", WARNING)],
        covers=["mania-current", "mania-undated"],
        person=person("Linnea", "Dahl", "female", "1986-06-06"),
    ),
    # --- §3 acute events that expire, history of haemorrhage, stable disease
    Spec(
        "v2-hypertensive-urgency-29-days",
        "Hypertensive urgency 29 days ago (active Condition), today's BP 128/80: still within 30 days, critical.",
        lambda c: trd_history(c, bp=(128, 80)).condition("hypertensive-urgency", onset=29),
        [SUMMARY, ("hypertension-uncontrolled", CRITICAL)],
        covers=["hypertension-uncontrolled", "boundary:hypertensive-urgency-29-days"],
        person=person("Rosa", "Ortiz", "female", "1967-12-01"),
    ),
    Spec(
        "v2-hypertensive-urgency-31-days",
        "Hypertensive urgency 31 days ago, still 'active' on the problem list; BP 128/80 now: no card.",
        lambda c: trd_history(c, bp=(128, 80)).condition("hypertensive-urgency", onset=31),
        [SUMMARY],
        covers=["boundary:hypertensive-urgency-31-days"],
        person=person("Jonas", "Berger", "male", "1966-03-14"),
    ),
    Spec(
        "v2-nstemi-6-weeks",
        "NSTEMI six weeks ago: an acute coronary syndrome within 8 weeks, critical.",
        lambda c: trd_history(c).condition("nstemi", onset=42, clinical="resolved", abated=35),
        [SUMMARY, ("cardiovascular-disease", CRITICAL)],
        covers=["cardiovascular-disease", "boundary:mi-6-weeks"],
        person=person("Bernd", "Keller", "male", "1958-08-08"),
    ),
    Spec(
        "v2-nstemi-10-weeks",
        "NSTEMI ten weeks ago (marked resolved): older than 8 weeks, a warning.",
        lambda c: trd_history(c).condition("nstemi", onset=70, clinical="resolved", abated=63),
        [SUMMARY, ("cardiovascular-disease", WARNING)],
        covers=["cardiovascular-disease", "boundary:mi-10-weeks"],
        person=person("Carla", "Neri", "female", "1959-10-10"),
    ),
    Spec(
        "v2-intracerebral-haemorrhage-resolved",
        "Intracerebral haemorrhage eight years ago, marked resolved: the label says history of, critical.",
        lambda c: trd_history(c).condition("intracerebral-hemorrhage", onset=2900, clinical="resolved", abated=2800),
        [SUMMARY, ("cardiovascular-disease", CRITICAL)],
        covers=["cardiovascular-disease", "history-of-haemorrhage"],
        person=person("Edith", "Marsh", "female", "1962-02-20"),
    ),
    Spec(
        "v2-stable-angina",
        "Angina pectoris (unspecified, stable) for years: a warning, not a contraindication.",
        lambda c: trd_history(c).condition("angina-unspecified", onset=1500),
        [SUMMARY, ("cardiovascular-disease", WARNING)],
        covers=["cardiovascular-disease", "stable-disease-warning"],
        person=person("Ulf", "Sandberg", "male", "1960-11-11"),
    ),
    # --- §3 liver, brain, substance use, misuse by name
    Spec(
        "v2-cirrhosis-with-ascites",
        "Alcoholic cirrhosis with ascites (K70.31, active): decompensated, critical.",
        lambda c: trd_history(c).condition("alcoholic-cirrhosis-ascites", onset=400),
        [SUMMARY, ("hepatic-impairment", CRITICAL)],
        covers=["hepatic-impairment", "decompensated-cirrhosis"],
        person=person("Kurt", "Wallin", "male", "1963-05-05"),
    ),
    Spec(
        "v2-meningioma",
        "An incidental meningioma (benign neoplasm of the meninges): a warning.",
        lambda c: trd_history(c).condition("meningioma", onset=600),
        [SUMMARY, ("intracranial-pressure", WARNING)],
        covers=["intracranial-pressure", "benign-intracranial"],
        person=person("Agnes", "Frost", "female", "1964-09-19"),
    ),
    Spec(
        "v2-nicotine-and-alcohol-in-remission",
        "Nicotine dependence and alcohol dependence in remission: summary lines, no substance-use card.",
        lambda c: (
            trd_history(c).condition("nicotine-dependence", onset=5000)
            .condition("alcohol-dependence-remission", onset=1200)
        ),
        [SUMMARY],
        covers=["substance-use-no-card"],
        person=person("Rolf", "Engel", "male", "1975-01-25"),
    ),
    Spec(
        "v2-ketamine-use-disorder-f19",
        "Ketamine use disorder coded F19.20 (other psychoactive substance dependence), named in the text: critical.",
        lambda c: trd_history(c).condition("ketamine-use-disorder", onset=900, text="Ketamine use disorder, moderate"),
        [SUMMARY, ("ketamine-misuse-history", CRITICAL)],
        covers=["ketamine-misuse-history", "ketamine-by-name-under-any-code"],
        person=person("Tobias", "Krug", "male", "1993-03-03"),
    ),
    # --- §3 pregnancy
    Spec(
        "v2-pregnancy-entry-299-days",
        "Supervision of normal pregnancy entered 299 days ago, still active: critical.",
        lambda c: trd_history(c, weight_kg=70).condition("supervision-pregnancy", onset=299),
        [SUMMARY, ("pregnancy", CRITICAL)],
        covers=["pregnancy", "boundary:pregnancy-299-days"],
        person=person("Lea", "Brandt", "female", "1994-07-07"),
    ),
    Spec(
        "v2-pregnancy-entry-301-days",
        "The same entry 301 days old: expired, a checklist line.",
        lambda c: trd_history(c, weight_kg=70).condition("supervision-pregnancy", onset=301),
        [SUMMARY],
        covers=["boundary:pregnancy-301-days"],
        person=person("Mila", "Novak", "female", "1993-08-08"),
    ),
    Spec(
        "v2-pregnancy-ended-by-delivery",
        "Pregnancy entered 200 days ago and a single live birth 20 days ago: the delivery ends the entry.",
        lambda c: trd_history(c, weight_kg=70).condition("supervision-pregnancy", onset=200)
        .condition("single-live-birth", onset=20),
        [SUMMARY],
        covers=["pregnancy-ended"],
        person=person("Selma", "Aydin", "female", "1995-05-15"),
    ),
    Spec(
        "v2-pregnancy-undated-entry",
        "An undated active 'pregnant state' entry in a 31-year-old woman: confirm, a warning.",
        lambda c: trd_history(c, weight_kg=70).condition("pregnancy", onset=None),
        [SUMMARY, ("pregnancy", WARNING)],
        covers=["pregnancy", "pregnancy-undated"],
        person=person("Nadia", "Haddad", "female", "1994-11-30"),
    ),
    Spec(
        "v2-old-positive-hcg",
        "A positive urine hCG 60 days ago and no later test: a warning to confirm.",
        lambda c: trd_history(c, weight_kg=70).hcg(60, positive=True),
        [SUMMARY, ("pregnancy", WARNING)],
        covers=["pregnancy", "boundary:hcg-positive-31-300-days"],
        person=person("Ines", "Carvalho", "female", "1992-02-02"),
    ),
    Spec(
        "v2-positive-hcg-male",
        "A positive hCG four days ago in a patient recorded male: pregnancy or an hCG-secreting tumour, a warning.",
        lambda c: trd_history(c).hcg(4, positive=True),
        [SUMMARY, ("pregnancy", WARNING)],
        covers=["pregnancy", "raised-hcg-male"],
        person=person("Luca", "Ferrari", "male", "1988-12-12"),
    ),
    # --- §3 quantitative hCG: thresholds, units and comparators
    Spec(
        "v2-hcg-4-iu-per-l",
        "Serum hCG 4 IU/L three days ago: below 5, negative.",
        lambda c: trd_history(c, weight_kg=70).hcg_quantitative(3, 4, "[IU]/L"),
        [SUMMARY],
        covers=["boundary:hcg-4"],
        person=person("Ada", "Winter", "female", "1991-01-11"),
    ),
    Spec(
        "v2-hcg-10-iu-per-l",
        "Serum hCG 10 IU/L three days ago: equivocal, repeat the test (a warning).",
        lambda c: trd_history(c, weight_kg=70).hcg_quantitative(3, 10, "[IU]/L"),
        [SUMMARY, ("pregnancy", WARNING)],
        covers=["pregnancy", "boundary:hcg-10"],
        person=person("Bea", "Winter", "female", "1991-02-12"),
    ),
    Spec(
        "v2-hcg-25-iu-per-l",
        "Serum hCG 25 IU/L three days ago: positive, critical.",
        lambda c: trd_history(c, weight_kg=70).hcg_quantitative(3, 25, "[IU]/L"),
        [SUMMARY, ("pregnancy", CRITICAL)],
        covers=["pregnancy", "boundary:hcg-25"],
        person=person("Cleo", "Winter", "female", "1991-03-13"),
    ),
    Spec(
        "v2-hcg-0.03-iu-per-ml",
        "Serum hCG 0.03 [IU]/mL (= 30 IU/L) three days ago: positive, critical.",
        lambda c: trd_history(c, weight_kg=70).hcg_quantitative(3, 0.03, "[IU]/mL"),
        [SUMMARY, ("pregnancy", CRITICAL)],
        covers=["pregnancy", "hcg-unit-iu-per-ml"],
        person=person("Dora", "Winter", "female", "1991-04-14"),
    ),
    Spec(
        "v2-hcg-0.03-miu-per-ml",
        "Serum hCG 0.03 m[IU]/mL (= 0.03 IU/L) three days ago: negative.",
        lambda c: trd_history(c, weight_kg=70).hcg_quantitative(3, 0.03, "m[IU]/mL"),
        [SUMMARY],
        covers=["hcg-unit-miu-per-ml"],
        person=person("Eira", "Winter", "female", "1991-05-15"),
    ),
    Spec(
        "v2-hcg-less-than-5",
        "Serum hCG reported as '<5' m[IU]/mL three days ago: negative.",
        lambda c: trd_history(c, weight_kg=70).hcg_quantitative(3, 5, "m[IU]/mL", comparator="<"),
        [SUMMARY],
        covers=["hcg-comparator-less-than-5"],
        person=person("Fay", "Winter", "female", "1991-06-16"),
    ),
    # --- §3 hypersensitivity (allergies prefetch key)
    Spec(
        "v2-ketamine-anaphylaxis",
        "Allergy list: ketamine, anaphylaxis in 2019: critical.",
        lambda c: trd_history(c).allergy("ketamine", recorded=2400, reactions=("Anaphylaxis",)),
        [SUMMARY, ("hypersensitivity", CRITICAL)],
        covers=["hypersensitivity", "allergies-prefetch"],
        person=person("Stina", "Holm", "female", "1978-04-04"),
    ),
    Spec(
        "v2-ketamine-intolerance-hallucinations",
        "Allergy list: ketamine intolerance (hallucinations during sedation): a warning.",
        lambda c: trd_history(c).allergy("ketamine", recorded=900, kind="intolerance", reactions=("Hallucinations",)),
        [SUMMARY, ("hypersensitivity", WARNING)],
        covers=["hypersensitivity", "intolerance"],
        person=person("Arvid", "Lund", "male", "1977-06-18"),
    ),
    Spec(
        "v2-ketamine-allergy-refuted",
        "A ketamine allergy entry that was later refuted: no card.",
        lambda c: trd_history(c).allergy("ketamine", recorded=900, verification="refuted"),
        [SUMMARY],
        covers=["hypersensitivity-refuted"],
        person=person("Petra", "Sjoberg", "female", "1984-10-04"),
    ),
    # --- §3 drug-interaction
    Spec(
        "v2-phenelzine-stopped-13-days",
        "Phenelzine stopped 13 days ago: within the 14-day MAOI washout, a warning.",
        lambda c: trd_history(c).statement("phenelzine-15", 45, start=200, end=13),
        [SUMMARY, ("drug-interaction", WARNING)],
        covers=["drug-interaction", "boundary:maoi-13-days"],
        person=person("Harald", "Wik", "male", "1970-02-28"),
    ),
    Spec(
        "v2-phenelzine-stopped-15-days",
        "Phenelzine stopped 15 days ago: the washout is over, no card.",
        lambda c: trd_history(c).statement("phenelzine-15", 45, start=200, end=15),
        [SUMMARY],
        covers=["boundary:maoi-15-days"],
        person=person("Siri", "Aas", "female", "1971-03-31"),
    ),
    Spec(
        "v2-methylphenidate-current",
        "Current methylphenidate (recorded by name under a local code): a psychostimulant, a warning.",
        lambda c: trd_history(c).named_medicine("Methylphenidate ER 36 mg tablet", 36, start=300),
        [SUMMARY, ("drug-interaction", WARNING)],
        covers=["drug-interaction", "psychostimulant", "mess:name-only-medication"],
        person=person("Nils", "Berg", "male", "1995-09-09"),
    ),
    Spec(
        "v2-lorazepam-no-card",
        "Current lorazepam: a benzodiazepine gives no card, the summary names it under sedation.",
        lambda c: trd_history(c).named_medicine("Lorazepam 1 mg tablet", 1, start=120),
        [SUMMARY],
        covers=["benzodiazepine-no-card"],
        person=person("Ebba", "Falk", "female", "1982-01-01"),
    ),
    # --- §3 minor-patient (17 y 364 d vs 18 y on any evaluation date)
    Spec(
        "v2-age-17-years-364-days",
        "Turns 18 tomorrow: under 18 today, a warning.",
        trd_history,
        [SUMMARY, ("minor-patient", WARNING)],
        covers=["minor-patient", "boundary:17y364d"],
        notes="17 years and 364 days old on the anchor, and so on any evaluation date (the roller keeps ages).",
        person=person("Ella", "Young", "female", "2008-01-02"),
    ),
    Spec(
        "v2-age-18-years",
        "18 today: an adult, no card.",
        trd_history,
        [SUMMARY],
        covers=["boundary:18y"],
        notes="18 years old to the day on the anchor, and so on any evaluation date (the roller keeps ages).",
        person=person("Emil", "Young", "male", "2008-01-01"),
    ),
    # --- §3 genitourinary-toxicity
    Spec(
        "v2-cystitis-six-infusions",
        "Interstitial cystitis and six ketamine infusions last year: repeated ketamine, a warning.",
        lambda c: administrations(trd_history(c).condition("interstitial-cystitis", onset=100), 200, 6),
        [SUMMARY, ("genitourinary-toxicity", WARNING)],
        covers=["genitourinary-toxicity", "boundary:six-administrations"],
        person=person("Greta", "Ahl", "female", "1979-07-07"),
    ),
    Spec(
        "v2-cystitis-five-infusions",
        "Interstitial cystitis and five ketamine infusions last year: not repeated ketamine, no card.",
        lambda c: administrations(trd_history(c).condition("interstitial-cystitis", onset=100), 200, 5),
        [SUMMARY],
        covers=["boundary:five-administrations"],
        person=person("Hanna", "Ahl", "female", "1980-08-08"),
    ),
    Spec(
        "v2-ketamine-cystitis-no-prescription",
        "'Ketamine-induced cystitis' under a cystitis code and no prescribed ketamine on record: bladder warning and "
        "a possible-misuse warning.",
        lambda c: trd_history(c).condition(
            "interstitial-cystitis", onset=80, text="Ketamine-induced ulcerative cystitis"
        ),
        [SUMMARY, ("genitourinary-toxicity", WARNING), ("ketamine-misuse-history", WARNING)],
        covers=["genitourinary-toxicity", "ketamine-misuse-history", "ketamine-uropathy"],
        person=person("Ville", "Koski", "male", "1996-02-14"),
    ),
    # --- §3 lactation (lactation prefetch key)
    Spec(
        "v2-lactating-mother-z39-1",
        "Seen as a lactating mother (Z39.1) two months ago: a warning.",
        lambda c: trd_history(c, weight_kg=68).condition("lactating-mother", onset=60),
        [SUMMARY, ("lactation", WARNING)],
        covers=["lactation"],
        person=person("Alma", "Rask", "female", "1991-03-03"),
    ),
    Spec(
        "v2-breastfeeding-observation",
        "Breastfeeding status 'exclusively breastfeeding' recorded a month ago (social history): a warning.",
        lambda c: trd_history(c, weight_kg=66).breastfeeding(30, "Exclusively breastfeeding"),
        [SUMMARY, ("lactation", WARNING)],
        covers=["lactation", "lactation-prefetch"],
        person=person("Tove", "Nord", "female", "1992-04-04"),
    ),
    Spec(
        "v2-breastfeeding-observation-400-days",
        "Breastfeeding recorded 400 days ago: older than 12 months, no card.",
        lambda c: trd_history(c, weight_kg=66).breastfeeding(400, "Exclusively breastfeeding"),
        [SUMMARY],
        covers=["boundary:lactation-12-months"],
        person=person("Maja", "Ek", "female", "1990-05-05"),
    ),
]
SPECS.extend(RULES_V2_SPECS)
# === end rules-v2 fixtures ================================================================================


def course_six(c: Chart, latest: int) -> None:
    trd_history(c, latest_phq9=22, latest_phq9_day=23)
    for t in (21, 18, 14, 11, 7, 4):
        c.administration(t, 40)
    c.phq9(1, latest)


def mess_eligible(c: Chart) -> None:
    c.condition("mdd-recurrent-severe", onset=1400, verification=None)
    c.condition("bipolar-ii", onset=1200, verification="refuted")
    c.phq9(565, 20, integer=True)
    c.statement("sertraline-100", 100, start=560, end=460, contained=True)
    c.phq9(470, 19, integer=True)
    venlafaxine = c.medication("venlafaxine-xr-150")
    c.phq9(335, 21, integer=True).prescriptions("venlafaxine-xr-150", 150, start=330, end=190, reference=venlafaxine)
    c.phq9(200, 20, integer=True)
    bupropion = c.medication("bupropion-xl-300")
    c.prescriptions("bupropion-xl-300", 300, start=21, reference=bupropion)
    c.phq9(10, 19, integer=True)
    c.bp(7, 126, 80, legacy=True)
    c.weight(7, 176, "[lb_av]")


# --- version 2 of the rule catalogue: dose, course and cards (branch dose-cards; §1 course-aware, §4, §5, §6,
# §8a). Boundary pairs: each fixture names its pair in ``covers``. ----------------------------------------------
def iv_course(c: Chart, *days_before: float, mg: float = 40) -> Chart:
    """Completed IV ketamine infusions ``days_before`` the anchor."""
    for t in days_before:
        c.administration(t, mg)
    return c


ESKETAMINE_MAINTENANCE = (38, 35, 31, 28, 24, 21, 17, 14, 7)  # twice weekly for 4 weeks, then weekly; week 6 now


DOSE_CARDS_V2: list[Spec] = [
    # §1: course-aware treatment resistance, antidepressant and severity
    Spec(
        "trd-esketamine-same-class",
        "Sertraline then escitalopram 20 mg, both adequate and failed (both SSRIs), ordered Spravato 56 mg: for "
        "esketamine two different antidepressants suffice, as the label says.",
        lambda c: trd_history(c, second=("escitalopram-20", 20)),
        [SUMMARY],
        template="esketamine-56mg",
        covers=["trd-esketamine-no-class-requirement", "pair:trd-same-class-trials"],
        person=person("Agnes", "Holt", "female", "1983-05-09"),
    ),
    Spec(
        "trd-not-repeated-during-course",
        "Only one adequate failed trial, but an IV ketamine course is under way (infusions 10 and 6 days ago, PHQ-9 "
        "20 before, 8 now): the treatment-resistance decision was taken when the course began.",
        lambda c: iv_course(trd_history(c, second=("venlafaxine-xr-37.5", 37.5), latest_phq9=20, latest_phq9_day=12),
                            10, 6).phq9(2, 8),
        [SUMMARY],
        covers=["trd-not-repeated-during-course", "pair:trd-one-adequate-trial"],
        person=person("Boris", "Ivanov", "male", "1979-02-18"),
    ),
    Spec(
        "antidepressant-not-repeated-during-course",
        "No current antidepressant, but an IV ketamine course is under way and responding: the card is not repeated.",
        lambda c: iv_course(trd_history(c, current=None, latest_phq9=20, latest_phq9_day=12), 10, 6).phq9(2, 8),
        [SUMMARY],
        covers=["antidepressant-not-repeated-during-course", "pair:no-concurrent-antidepressant"],
        person=person("Celia", "Moss", "female", "1985-07-23"),
    ),
    Spec(
        "severity-pre-course-baseline-14",
        "An IV ketamine course began 10 days ago from a PHQ-9 of 14 (below moderately severe); PHQ-9 6 now.",
        lambda c: iv_course(trd_history(c, latest_phq9=14, latest_phq9_day=12), 10, 6).phq9(2, 6),
        [SUMMARY, ("depression-severity-insufficient", WARNING)],
        covers=["depression-severity-insufficient", "severity-pre-course-baseline",
                "pair:course-six-infusions-responder"],
        person=person("Dmitri", "Sokol", "male", "1981-09-04"),
    ),
    Spec(
        "severity-course-without-baseline",
        "An IV ketamine course began 10 days ago with no score in the 30 days before it; PHQ-9 8 two days ago. "
        "Severity at the start cannot be confirmed: a checklist line, no card.",
        lambda c: iv_course(trd_history(c, latest_phq9=8, latest_phq9_day=2), 10, 6),
        [SUMMARY],
        covers=["severity-course-no-baseline"],
        person=person("Edith", "Lowe", "female", "1977-12-15"),
    ),
    # §8a: one card for the data needed before dosing
    Spec(
        "pre-dose-all-missing",
        "No score for 45 days, no blood pressure for 45 days, no weight for 120 days: one card, three lines, three "
        "suggestions.",
        lambda c: trd_history(c, latest_phq9_day=45, bp_day=45, weight_day=120),
        [SUMMARY, DATA],
        covers=["pre-dose-data-missing", "pre-dose-one-card"],
        person=person("Frank", "Nolan", "male", "1972-03-30"),
    ),
    Spec(
        "pre-dose-last-bp-was-high",
        "The only blood pressure, 45 days ago, was 165/102: the data card names it and says it was at or above "
        "the hold line.",
        lambda c: trd_history(c, bp=(165, 102), bp_day=45),
        [SUMMARY, DATA],
        covers=["pre-dose-data-missing", "pre-dose-bp-line-names-last-reading"],
        person=person("Gina", "Park", "female", "1980-10-10"),
    ),
    # §4: 0.5-0.75 mg/kg after a documented non-response at 0.5 mg/kg
    Spec(
        "dose-0.75-after-nonresponse",
        "80 kg; two 40 mg (0.5 mg/kg) infusions 14 and 10 days ago, PHQ-9 20 before and 18 now: no response. "
        "Ordered 60 mg (0.75 mg/kg): acceptable for a non-responder (info), and the non-response card.",
        lambda c: iv_course(trd_history(c, latest_phq9=20, latest_phq9_day=16), 14, 10).phq9(2, 18),
        [SUMMARY, ("nonresponse-after-infusions", WARNING), ("dose-above-standard", INFO)],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 60},
        covers=["dose-above-standard", "boundary:nonresponder-0.75-mg-per-kg", "pair:dose-0.76-after-nonresponse"],
        person=person("Hector", "Diaz", "male", "1976-06-01"),
    ),
    Spec(
        "dose-0.76-after-nonresponse",
        "Same non-responder, ordered 61 mg (0.7625 mg/kg): above the 0.75 mg/kg limit for non-responders.",
        lambda c: iv_course(trd_history(c, latest_phq9=20, latest_phq9_day=16), 14, 10).phq9(2, 18),
        [SUMMARY, ("nonresponse-after-infusions", WARNING), ("dose-above-standard", WARNING)],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 61},
        covers=["dose-above-standard", "boundary:nonresponder-0.76-mg-per-kg", "pair:dose-0.75-after-nonresponse"],
        person=person("Iris", "Quigley", "female", "1984-04-17"),
    ),
    # §4: chronic-pain orders checked by rate
    Spec(
        "pain-rate-0.5",
        "CRPS; ordered 2 mg/kg over 4 hours at 0.5 mg/kg/h daily: at the rate limit, no dose card.",
        lambda c: plain_vitals(c.condition("crps-right-upper", onset=500), 72),
        [SUMMARY, ("chronic-pain-evidence", INFO)],
        template="iv-ketamine-pain-infusion",
        params={"reason": coding(CONDITIONS["crps-right-upper"]), "rate_mg_per_kg_per_h": 0.5, "dose_mg_per_kg": 2},
        covers=["pain-by-rate", "boundary:pain-rate-0.5", "pair:pain-rate-0.51"],
        person=person("Jorge", "Alvarez", "male", "1973-01-26"),
    ),
    Spec(
        "pain-rate-0.51",
        "CRPS; ordered 2.04 mg/kg over 4 hours at 0.51 mg/kg/h: above the 0.5 mg/kg/h rate.",
        lambda c: plain_vitals(c.condition("crps-right-upper", onset=500), 72),
        [SUMMARY, ("dose-above-standard", WARNING), ("chronic-pain-evidence", INFO)],
        template="iv-ketamine-pain-infusion",
        params={"reason": coding(CONDITIONS["crps-right-upper"]), "rate_mg_per_kg_per_h": 0.51,
                "dose_mg_per_kg": 2.04},
        covers=["pain-by-rate", "boundary:pain-rate-0.51", "pair:pain-rate-0.5"],
        person=person("Kira", "Bauer", "female", "1988-08-08"),
    ),
    Spec(
        "pain-bolus-1-mg-per-kg",
        "CRPS as the order's reason, but 80 mg (1 mg/kg for 80 kg) given over 10 minutes: an anaesthetic bolus.",
        lambda c: plain_vitals(c.condition("crps-right-upper", onset=500), 80),
        [SUMMARY, ("dose-anesthetic-range", CRITICAL), ("chronic-pain-evidence", INFO)],
        template="iv-ketamine-fixed-dose",
        params={"reason": coding(CONDITIONS["crps-right-upper"]), "dose_mg": 80, "duration_min": 10,
                "frequency_per_week": 1},
        covers=["pain-by-rate", "pain-bolus", "boundary:pain-bolus-10-min"],
        person=person("Lars", "Nielsen", "male", "1970-11-11"),
    ),
    # §4: the weight gate
    Spec(
        "weight-pounds-typed-as-kg",
        "168 'kg' recorded two days ago (the patient weighs 168 lb; 76 kg two months ago); 60 mg ordered: the dose "
        "is judged with the more cautious 76 kg (0.79 mg/kg), no one-click rewrite, and the weight is to re-measure.",
        lambda c: trd_history(c, weight_kg=76, weight_day=60).weight(2, 168),
        [SUMMARY, ("dose-above-standard", WARNING), DATA],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 60},
        covers=["weight-plausibility", "boundary:weight-change-121-percent", "rewrite-withheld",
                "pair:weight-plus-20-percent"],
        person=person("Mona", "Weber", "female", "1982-02-22"),
    ),
    Spec(
        "weight-plus-20-percent",
        "76 kg two months ago, 91.2 kg two days ago (+20%, the limit): plausible; the standard 46 mg is ordered.",
        lambda c: trd_history(c, weight_kg=76, weight_day=60).weight(2, 91.2),
        [SUMMARY],
        covers=["weight-plausibility", "boundary:weight-change-20-percent", "pair:weight-plus-21-percent"],
        person=person("Nils", "Ek", "male", "1978-05-05"),
    ),
    Spec(
        "weight-plus-21-percent",
        "76 kg two months ago, 92 kg two days ago (+21%): implausible for the rewrite; the 46 mg ordered for 92 kg is "
        "judged with the more cautious 76 kg (0.61 mg/kg) and the weight is to re-measure.",
        lambda c: trd_history(c, weight_kg=76, weight_day=60).weight(2, 92),
        [SUMMARY, ("dose-above-standard", WARNING), DATA],
        covers=["weight-plausibility", "boundary:weight-change-21-percent", "pair:weight-plus-20-percent",
                "rewrite-withheld"],
        person=person("Olaf", "Berg", "male", "1977-06-06"),
    ),
    Spec(
        "weight-30-kg",
        "A 30 kg adult (the lowest plausible weight), ordered the standard 15 mg (0.5 mg/kg) over 40 minutes.",
        lambda c: trd_history(c, weight_kg=30),
        [SUMMARY],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 15},
        covers=["weight-plausibility", "boundary:weight-30-kg", "pair:weight-29.9-kg"],
        person=person("Xenia", "Roth", "female", "1990-02-02"),
    ),
    Spec(
        "weight-29.9-kg",
        "Weight recorded as 29.9 kg (below the plausible 30 kg): it counts as not documented, so the 15 mg dose "
        "cannot be checked and the weight is to re-measure.",
        lambda c: trd_history(c, weight_kg=29.9),
        [SUMMARY, DATA],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 15},
        covers=["weight-plausibility", "boundary:weight-29.9-kg", "pair:weight-30-kg"],
        person=person("Yara", "Haddad", "female", "1991-03-03"),
    ),
    Spec(
        "weight-300-kg",
        "A 300 kg patient (the highest plausible weight), ordered the standard 150 mg (0.5 mg/kg).",
        lambda c: trd_history(c, weight_kg=300),
        [SUMMARY],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 150},
        covers=["weight-plausibility", "boundary:weight-300-kg", "pair:weight-300.1-kg"],
        person=person("Zane", "Olsen", "male", "1975-04-04"),
    ),
    Spec(
        "weight-300.1-kg",
        "Weight recorded as 300.1 kg (above the plausible 300 kg): not documented, the dose cannot be checked.",
        lambda c: trd_history(c, weight_kg=300.1),
        [SUMMARY, DATA],
        template="iv-ketamine-fixed-dose",
        params={"dose_mg": 150},
        covers=["weight-plausibility", "boundary:weight-300.1-kg", "pair:weight-300-kg"],
        person=person("Anton", "Falk", "male", "1974-05-05"),
    ),
    # §5: esketamine first dose and frequency by course week
    Spec(
        "esketamine-84mg-first-session",
        "Spravato 84 mg ordered with no esketamine in the record: the label starts at 56 mg.",
        lambda c: trd_history(c, weight_kg=None),
        [SUMMARY, ("esketamine-first-dose", WARNING)],
        template="esketamine-84mg",
        covers=["esketamine-first-dose", "boundary:esketamine-84mg-no-prior-session", "pair:esketamine-84mg"],
        person=person("Oona", "Reilly", "female", "1980-09-19"),
    ),
    Spec(
        "esketamine-84mg-first-session-suicidal-ideation",
        "Spravato 84 mg ordered for major depression with acute suicidal ideation (the order's reason), no esketamine "
        "in the record: the label starts that indication at 84 mg, so no first-dose card.",
        lambda c: trd_history(c, weight_kg=None),
        [SUMMARY, ("suicidal-ideation", INFO)],
        template="esketamine-84mg",
        params={"reason": coding(CONDITIONS["suicidal-ideation"])},
        covers=["esketamine-first-dose", "esketamine-first-dose-suicidal-ideation",
                "pair:esketamine-84mg-first-session"],
        person=person("Pavel", "Dvorak", "male", "1984-01-14"),
    ),
    Spec(
        "esketamine-84mg-after-9-weeks",
        "Spravato 84 mg; the last session was 63 days ago (more than 8 weeks): a new course, which starts at 56 mg.",
        lambda c: esketamine_sessions(trd_history(c, weight_kg=None), 70, 66.5, 63),
        [SUMMARY, ("esketamine-first-dose", WARNING)],
        template="esketamine-84mg",
        covers=["esketamine-first-dose", "course-gap-8-weeks"],
        person=person("Piet", "de Vries", "male", "1975-03-03"),
    ),
    Spec(
        "esketamine-3-per-week-week-2",
        "Spravato 56 mg three times a week in the course's second week: the label's induction is twice weekly.",
        lambda c: esketamine_sessions(trd_history(c), 10, 7, 3),
        [SUMMARY, ("frequency-above-protocol", WARNING)],
        template="esketamine-56mg",
        params={"frequency_per_week": 3},
        covers=["frequency-above-protocol", "boundary:esketamine-3-per-week-induction", "pair:esketamine-84mg"],
        person=person("Quinn", "Baker", "female", "1986-11-28"),
    ),
    Spec(
        "esketamine-2-per-week-week-6",
        "Spravato 56 mg twice a week in week 6 of a responding course: from week 5 the label doses weekly.",
        lambda c: esketamine_sessions(trd_history(c, latest_phq9=22, latest_phq9_day=39), *ESKETAMINE_MAINTENANCE)
        .phq9(2, 8),
        [SUMMARY, ("frequency-above-protocol", WARNING)],
        template="esketamine-56mg",
        params={"frequency_per_week": 2},
        covers=["frequency-above-protocol", "boundary:esketamine-2-per-week-maintenance",
                "pair:esketamine-weekly-week-6"],
        person=person("Ravi", "Shah", "male", "1979-07-14"),
    ),
    Spec(
        "esketamine-weekly-week-6",
        "Spravato 56 mg weekly in week 6 of a responding course: the label's maintenance.",
        lambda c: esketamine_sessions(trd_history(c, latest_phq9=22, latest_phq9_day=39), *ESKETAMINE_MAINTENANCE)
        .phq9(2, 8),
        [SUMMARY],
        template="esketamine-56mg",
        params={"frequency_per_week": 1},
        covers=["boundary:esketamine-1-per-week-maintenance", "pair:esketamine-2-per-week-week-6"],
        person=person("Sonia", "Kim", "female", "1983-12-02"),
    ),
    # §6: esketamine non-response at the end of induction; acute-course-complete only at acute cadence
    Spec(
        "esketamine-session-7-not-judged",
        "Seven Spravato sessions in 24 days, PHQ-9 22 before and 20 now: induction is not over, no response card yet.",
        lambda c: esketamine_sessions(trd_history(c, latest_phq9=22, latest_phq9_day=25), 24, 21, 17, 14, 10, 7, 3)
        .phq9(1, 20),
        [SUMMARY],
        template="esketamine-84mg",
        covers=["boundary:esketamine-session-7", "pair:esketamine-session-8-nonresponse"],
        person=person("Tariq", "Aziz", "male", "1977-04-04"),
    ),
    Spec(
        "esketamine-session-8-nonresponse",
        "Eight Spravato sessions (induction complete), PHQ-9 22 before and 20 now: no response at the end of "
        "induction.",
        lambda c: esketamine_sessions(trd_history(c, latest_phq9=22, latest_phq9_day=28), 27, 24, 20, 17, 13, 10, 6, 3)
        .phq9(1, 20),
        [SUMMARY, ("nonresponse-after-infusions", WARNING)],
        template="esketamine-84mg",
        covers=["nonresponse-after-infusions", "boundary:esketamine-session-8", "pair:esketamine-session-7-not-judged"],
        person=person("Ulla", "Berg", "female", "1982-06-26"),
    ),
    Spec(
        "acute-course-last-interval-6-days",
        "Six infusions, the last two 6 days apart: still the acute cadence, so plan maintenance or stop.",
        lambda c: iv_course(trd_history(c, latest_phq9=22, latest_phq9_day=26), 24, 20.5, 17, 13.5, 10, 4).phq9(1, 9),
        [SUMMARY, ("acute-course-complete", INFO)],
        covers=["acute-course-complete", "boundary:interval-6-days", "pair:acute-course-last-interval-7-days"],
        person=person("Viktor", "Hahn", "male", "1974-10-20"),
    ),
    Spec(
        "acute-course-last-interval-7-days",
        "Six infusions, the last two 7 days apart: maintenance cadence, the acute-course card is not repeated.",
        lambda c: iv_course(trd_history(c, latest_phq9=22, latest_phq9_day=26), 24, 20.5, 17, 13.5, 10, 3).phq9(1, 9),
        [SUMMARY],
        covers=["boundary:interval-7-days", "pair:acute-course-last-interval-6-days"],
        person=person("Wilma", "Stone", "female", "1981-01-31"),
    ),
]


# === patient-view fixtures (clinical-rules.md §11, issue 19) ===============================================
# The cards of the Patient View tab (no order drafted). ``PATIENT_VIEW`` states them for library patients (their
# order cards stay as the blocks above state them) and for the patients of ``PATIENT_VIEW_SPECS``, which add the
# §11 boundaries the library lacked: a course's latest session 8 weeks ago vs just over, ketamine or ECT 364 vs
# 366 days ago, remission at PHQ-9 5 vs 6, response at 50% vs 48%. Expected cards are decided from §11 alone.
COURSE_STATUS, TRD_CANDIDATE = ("course-status", INFO), ("trd-candidate", INFO)


def pv_course(c: Chart, *days_before: float, baseline: int, latest: int, latest_day: float = 2) -> Chart:
    """The TRD chart with an IV ketamine course: the pre-course PHQ-9 three days before the first infusion."""
    trd_history(c, latest_phq9=baseline, latest_phq9_day=max(days_before) + 3)
    return iv_course(c, *days_before).phq9(latest_day, latest)


PATIENT_VIEW_SPECS: list[Spec] = [
    Spec(
        "pv-course-latest-8-weeks",
        "Two IV ketamine infusions 60 and 56 days ago, PHQ-9 20 before and 9 ten days ago: the latest session is 8 "
        "weeks old, so the course is still under way.",
        lambda c: pv_course(c, 60, 56, baseline=20, latest=9, latest_day=10),
        [SUMMARY],
        covers=["§11 course-status", "boundary:course-latest-56-days", "pair:pv-course-latest-over-8-weeks"],
        person=person("Nadia", "Okafor", "female", "1979-03-02"),
    ),
    Spec(
        "pv-course-latest-over-8-weeks",
        "The same two infusions a day earlier (61 and 57 days ago): the course is over. Outside a course the "
        "deciding score is the latest, PHQ-9 9: a severity warning on the order.",
        lambda c: pv_course(c, 61, 57, baseline=20, latest=9, latest_day=10),
        [SUMMARY, ("depression-severity-insufficient", WARNING)],
        covers=["§11 course-status", "boundary:course-latest-57-days", "pair:pv-course-latest-8-weeks"],
        person=person("Nadia", "Okafor", "female", "1979-03-02"),
    ),
    Spec(
        "pv-remission-phq9-5",
        "Three IV ketamine infusions in the last 12 days; PHQ-9 20 before the course, 5 two days ago: remission.",
        lambda c: pv_course(c, 12, 9, 5, baseline=20, latest=5),
        [SUMMARY],
        covers=["§11 course-status", "boundary:remission-phq9-5", "pair:pv-response-phq9-6"],
        person=person("Owen", "Hale", "male", "1974-08-19"),
    ),
    Spec(
        "pv-response-phq9-6",
        "The same course with PHQ-9 6 two days ago: a response (70% lower), not remission.",
        lambda c: pv_course(c, 12, 9, 5, baseline=20, latest=6),
        [SUMMARY],
        covers=["§11 course-status", "boundary:remission-phq9-6", "pair:pv-remission-phq9-5"],
        person=person("Owen", "Hale", "male", "1974-08-19"),
    ),
    Spec(
        "pv-response-50-percent",
        "Three IV ketamine infusions in the last 12 days; PHQ-9 24 before, 12 now: exactly 50% lower, a response.",
        lambda c: pv_course(c, 12, 9, 5, baseline=24, latest=12),
        [SUMMARY],
        covers=["§11 course-status", "boundary:response-50-percent", "pair:pv-no-response-48-percent"],
        person=person("Priya", "Raman", "female", "1986-11-30"),
    ),
    Spec(
        "pv-no-response-48-percent",
        "The same course from PHQ-9 25 to 13: 48% lower, no response yet; the order gets the non-response warning.",
        lambda c: pv_course(c, 12, 9, 5, baseline=25, latest=13),
        [SUMMARY, ("nonresponse-after-infusions", WARNING)],
        covers=["§11 course-status", "boundary:response-48-percent", "pair:pv-response-50-percent"],
        person=person("Priya", "Raman", "female", "1986-11-30"),
    ),
    Spec(
        "pv-ketamine-364-days",
        "Meets the TRD criteria, but had one IV ketamine infusion 364 days ago: not a candidate in patient-view.",
        lambda c: trd_history(c).administration(364, 40),
        [SUMMARY],
        covers=["§11 trd-candidate", "boundary:ketamine-364-days", "pair:pv-ketamine-366-days"],
        person=person("Tomas", "Berg", "male", "1969-05-05"),
    ),
    Spec(
        "pv-ketamine-366-days",
        "The same infusion 366 days ago: over a year, a TRD candidate.",
        lambda c: trd_history(c).administration(366, 40),
        [SUMMARY],
        covers=["§11 trd-candidate", "boundary:ketamine-366-days", "pair:pv-ketamine-364-days"],
        person=person("Tomas", "Berg", "male", "1969-05-05"),
    ),
    Spec(
        "pv-ect-364-days",
        "Meets the TRD criteria, but had ECT 364 days ago (a Procedure named only in words): not a candidate.",
        lambda c: trd_history(c).ect(364),
        [SUMMARY],
        covers=["§11 trd-candidate", "boundary:ect-364-days", "pair:pv-ect-366-days"],
        person=person("Ines", "Duarte", "female", "1977-12-12"),
    ),
    Spec(
        "pv-ect-366-days",
        "The same ECT 366 days ago: over a year, a TRD candidate.",
        lambda c: trd_history(c).ect(366),
        [SUMMARY],
        covers=["§11 trd-candidate", "boundary:ect-366-days", "pair:pv-ect-364-days"],
        person=person("Ines", "Duarte", "female", "1977-12-12"),
    ),
]

# The patient-view cards of each patient that states them (fixture name -> cards).
PATIENT_VIEW: dict[str, list[tuple[str, str]]] = {
    # a TRD candidate: active MDD, two failed trials of different classes, no ketamine, esketamine or ECT
    "eligible-mdd-iv": [TRD_CANDIDATE],
    "eligible-esketamine-56mg": [TRD_CANDIDATE],
    "non-ketamine-order": [TRD_CANDIDATE],  # the same patient: the chart says it whatever is ordered
    "trials-without-scores": [TRD_CANDIDATE],  # failure not documented by a scale: counted, marked unverified
    "bp-159-99": [TRD_CANDIDATE],  # a warning of §3 does not stop it
    # not a candidate: one adequate trial, two of one class, or a critical finding of §2-3
    "trd-one-adequate-trial": [],
    "trd-same-class-trials": [],
    "bp-160-100": [],
    "psychosis-mdd-psychotic-features": [],
    "bipolar-no-mood-stabilizer": [],
    "pregnancy-positive-hcg": [],
    "hydrocephalus": [],
    "v2-ketamine-anaphylaxis": [],
    # no depressive disorder: nothing at all
    "crps-pain": [],
    "ptsd-only": [],
    "indication-undocumented": [],
    # a course under way, at each stage (never a TRD candidate: ketamine or esketamine in the last year)
    "course-one-infusion": [COURSE_STATUS],  # early acute: judged from the second infusion
    "course-nonresponse-two-infusions": [COURSE_STATUS],
    "course-six-infusions-responder": [COURSE_STATUS],  # acute course complete
    "acute-course-last-interval-7-days": [COURSE_STATUS],  # maintenance
    "esketamine-session-7-not-judged": [COURSE_STATUS],  # esketamine induction
    "esketamine-weekly-week-6": [COURSE_STATUS],  # esketamine after induction
    "esketamine-84mg-after-9-weeks": [],  # the last session 63 days ago: no course, but esketamine this year
    "pv-course-latest-8-weeks": [COURSE_STATUS],
    "pv-course-latest-over-8-weeks": [],
    "pv-remission-phq9-5": [COURSE_STATUS],
    "pv-response-phq9-6": [COURSE_STATUS],
    "pv-response-50-percent": [COURSE_STATUS],
    "pv-no-response-48-percent": [COURSE_STATUS],
    "pv-ketamine-364-days": [],
    "pv-ketamine-366-days": [TRD_CANDIDATE],
    "pv-ect-364-days": [],
    "pv-ect-366-days": [TRD_CANDIDATE],
}


# --- output -----------------------------------------------------------------------------------------------
def chart_for(spec: Spec) -> Chart:
    chart = Chart(spec.name).patient(*spec.person)
    spec.chart(chart)
    return chart


def render(spec_list: list[Spec]) -> dict[Path, str]:
    files: dict[Path, str] = {}
    stated = dict(PATIENT_VIEW)  # patient-view cards not yet written to an entry
    templates = {t["name"]: t for t in TEMPLATES}
    for tpl in TEMPLATES:
        files[HERE / "orders" / f"{tpl['name']}.json"] = dump(tpl)
    patients = []
    names = set()
    for spec in spec_list:
        assert spec.name not in names, spec.name
        names.add(spec.name)
        bundle = chart_for(spec).bundle()
        files[HERE / "bundles" / f"{spec.name}.json"] = dump(bundle)
        hooks = (*HOOKS, PATIENT_VIEW_HOOK) if spec.name in stated else HOOKS
        for hook in hooks:
            template = templates[spec.template]
            req = build_request(bundle, template, hook, anchor=ANCHOR, params=spec.params, name=spec.name)
            files[HERE / "requests" / spec.name / f"{hook}.json"] = dump(req)
        entry: dict[str, Any] = {
            "name": spec.name,
            "story": spec.story,
            "bundle": f"bundles/{spec.name}.json",
            "requests": {hook: f"requests/{spec.name}/{hook}.json" for hook in hooks},
            "order": {"template": spec.template, "params": spec.params},
            "expected": [{"topic": t, "indicator": i} for t, i in spec.expected],
            "covers": spec.covers,
            "resources": len(bundle["entry"]),
        }
        if spec.name in stated:
            entry["expected_patient_view"] = [{"topic": t, "indicator": i} for t, i in stated.pop(spec.name)]
        if spec.notes:
            entry["notes"] = spec.notes
        patients.append(entry)
    manifest = {
        "description": "Synthetic patients for ketamine-cds. Dates are relative to 'anchor'; tools shift them to the "
        "evaluation date (cds_service/sandbox/roller.py). 'expected' lists the cards (topic, indicator) the rule "
        "catalogue requires for the patient's order, eligibility-summary first; the order of the rest is free. "
        "'expected_patient_view', where stated, lists the cards of the patient-view hook (the chart opened).",
        "anchor": ANCHOR.isoformat(),
        "patients": patients,
    }
    assert not stated, f"patient-view cards stated for fixtures not in the library: {sorted(stated)}"
    files[HERE / "manifest.json"] = dump(manifest)
    return files


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = parser.parse_args(argv)
    library = SPECS + DOSE_CARDS_V2 + PATIENT_VIEW_SPECS
    files = render(library)
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(HERE)}")
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p], encoding="utf-8")
    print(f"{len(library)} patients, {len(files)} files ({len(stale)} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
