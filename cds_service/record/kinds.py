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
