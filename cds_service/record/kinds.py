"""Names of the kinds of patient data the rules read; prefetch keys map onto these."""

from typing import Final

PATIENT: Final = "patient"
CONDITIONS: Final = "conditions"
MEDICATIONS: Final = "medications"
BLOOD_PRESSURE: Final = "blood-pressure"
WEIGHT: Final = "weight"
SCORES: Final = "scores"
PREGNANCY_TESTS: Final = "pregnancy-tests"
ADMINISTRATIONS: Final = "administrations"
ALLERGIES: Final = "allergies"
LACTATION: Final = "lactation"  # observations that say the patient is breastfeeding
PROCEDURES: Final = "procedures"  # electroconvulsive therapy (the only procedure the rules read)

ALL: Final = frozenset(
    {
        PATIENT, CONDITIONS, MEDICATIONS, BLOOD_PRESSURE, WEIGHT, SCORES, PREGNANCY_TESTS, ADMINISTRATIONS,
        ALLERGIES, LACTATION, PROCEDURES,
    }
)  # fmt: skip

# Kinds of which the record keeps only the newest readings (``vitals.max_readings_per_kind``): their searches
# are decoded only as far as the intake reads each reading (``record/partial.py``).
CAPPED: Final = frozenset({BLOOD_PRESSURE, WEIGHT})
