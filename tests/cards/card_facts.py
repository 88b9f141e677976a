"""Realistic worst-case facts for every card-text placeholder: the longest value a rule really produces.

``tests/cards/test_card_text.py`` fills every summary of every topic and variant with these and proves it fits in 140
characters as composed, so the renderer never has to cut one. A new placeholder needs a value here (the test
names it); a topic whose placeholder means something else than the common one gets a (topic, name) entry.
"""

from __future__ import annotations

LONG_CONDITION = "Schizoaffective disorder, bipolar type, with a long descripti"  # names are composed to <= 60
NAMES_40 = "lorazepam, tranylcypromine and 2 more"[:40]  # compose_names(..., 40, ...)

WORST: dict[str, str] = {
    "age": "104",
    "baseline": "60",  # MADRS maximum
    "bolus_minutes": "15",
    "bp": "300/200",
    "change": "100% higher",
    "condition": LONG_CONDITION,
    "count": "24",
    "date": "2026-12-01",
    "diagnosis": LONG_CONDITION,
    "dose": "1234.5 mg (15.43 mg/kg) over 14.5 min",
    "days": "90",
    "dose_mg": "112",
    "drug": "esketamine",  # the ordered drug's name (order.drug)
    "elderly_age": "65",
    "first_mg": "56",
    "found": "1",
    "indication": "bipolar depression with suicidal ideation",
    "instrument": "HAM-D",
    "items": "a depression score, blood pressure, body weight, date of birth and a readable dose (mg or mg/kg)",
    "latest": "60",
    "limit": "160/100",
    "max": "6",
    "max_mg": "84",
    "medicine": NAMES_40,
    "mg_per_kg": "12.5",
    "min_mg": "56",
    "minimum": "20",
    "minutes": "39.9",
    "nonresponder_max": "0.75",
    "ordered": "1234.5 mg/kg",
    "pct": "50",
    "per_week": "14",
    "rate": "0.514",
    "reason": "no score in the 30 days before the first session",
    "remission": "10",
    "reaction": "anaphylaxis, urticaria and 2 more reactions"[:40],
    "required": "2",
    "score": "27",
    "sessions": "24 infusions",
    "since": "2026-12-01",
    "source": "problem list",
    "stabilizers": "lamotrigine, lurasidone and lumateperone",
    "substance": "ketamine hydrochloride injection and 1 more"[:40],
    "standard_mg": "150",
    "standard_mg_per_kg": "0.5",
    "standard_minutes": "40",
    "start_mg": "28",
    "trials": "lorazepam, tranylcypromine and 2 more"[:40],  # compose_names(..., 40, ...)
    "test": "hCG <24999.9 IU/L (equivocal) on 2026-12-01",
    "test_date": "2026-12-01",
    "verdict": "2 critical, 11 warnings, 4 items to record",
    "week": "12",
    "weeks": "8",
    "weight_kg": "299.9",
    "what": "the medication history and the depression scores",
}
# Placeholders whose value is of another kind in one topic.
BY_TOPIC: dict[tuple[str, str], str] = {
    ("eligibility-summary", "drug"): "ketamine (route not stated: checked as IV)",
    ("depression-severity-insufficient", "latest"): "MADRS 60 on 2026-12-01",
    ("course-status", "drug"): "IV ketamine",
}
