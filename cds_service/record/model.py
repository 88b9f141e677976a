"""Typed, normalised patient facts. Rules read only these; they never see raw FHIR JSON.

All datetimes are timezone-aware (UTC). A FHIR date without time is read as midnight UTC.
A fact whose date is unknown has ``when=None``: it can prove history, never recency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from cds_service.terminology.codes import Code


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of data a finding relied on, shown to the clinician in the card detail."""

    resource_type: str
    resource_id: str | None
    when: datetime | None
    value: str  # human-readable, e.g. "PHQ-9 total 18" or "sertraline 100 mg/day"

    def describe(self) -> str:
        """Card text: what, value and date ("PHQ-9 total 18 on 2026-12-01"). Never the FHIR id: the renderer
        lists ids only in the card's audit extension (clinical-rules.md §9)."""
        return f"{self.value} on {self.when.date().isoformat()}" if self.when else f"{self.value} (date unknown)"

    def reference(self) -> str | None:
        """``Type/id`` of the resource, for the audit extension only."""
        return f"{self.resource_type}/{self.resource_id}" if self.resource_id else None


class Recognition(StrEnum):
    """How a medication or condition was recognised."""

    CODE = "code"
    NAME = "name"  # matched on coding.display / code.text only: the card says so


@dataclass(frozen=True, slots=True)
class ConditionFact:
    resource_id: str | None
    codes: tuple[Code, ...]
    text: str | None
    clinical_status: str | None  # active|recurrence|relapse|inactive|remission|resolved, None when absent
    verification_status: str | None  # None when absent (treated as confirmed)
    onset: datetime | None
    abatement: datetime | None
    recorded: datetime | None
    categories: frozenset[str]  # knowledge-base condition categories this condition belongs to
    recognition: Recognition = Recognition.CODE
    # categories recognised from the words of code.text/display only (the card says "recognised by name")
    named_categories: frozenset[str] = frozenset()
    # categories whose words appear only after "history of" ("History of psychosis"): never an active disorder
    history_categories: frozenset[str] = frozenset()

    @property
    def is_active(self) -> bool:
        """Active per clinical-rules.md §3: active/recurrence/relapse or absent status, not refuted."""
        return self.clinical_status in (None, "active", "recurrence", "relapse")

    def is_active_for(self, category: str) -> bool:
        """Active, and not recognised for ``category`` only from "history of ..." words."""
        return self.is_active and category not in self.history_categories

    @property
    def when(self) -> datetime | None:
        """The date the entry speaks for: onset, else the date it was recorded (None: undated)."""
        return self.onset or self.recorded

    @property
    def label(self) -> str:
        if self.text:
            return self.text
        for c in self.codes:
            if c.display:
                return c.display
        return self.codes[0].code if self.codes else "condition"

    def evidence(self) -> Evidence:
        status = self.clinical_status or "status not recorded"
        return Evidence("Condition", self.resource_id, self.onset or self.recorded, f"{self.label} ({status})")


@dataclass(frozen=True, slots=True)
class MedicationUse:
    """One MedicationStatement or MedicationRequest for one ingredient."""

    resource_type: str  # MedicationStatement | MedicationRequest
    resource_id: str | None
    ingredient: str  # knowledge-base ingredient key, e.g. "sertraline"
    status: str | None
    start: datetime | None
    end: datetime | None  # None with ongoing=True: still taking it
    ongoing: bool
    daily_dose_mg: float | None  # None: dose not recorded or not computable
    recognition: Recognition
    flags: tuple[str, ...] = ()  # e.g. "duration-unknown", "dose-unknown", "start-unknown"

    def evidence(self) -> Evidence:
        dose = f"{self.daily_dose_mg:g} mg/day" if self.daily_dose_mg is not None else "dose not recorded"
        return Evidence(self.resource_type, self.resource_id, self.start, f"{self.ingredient} {dose}")


@dataclass(frozen=True, slots=True)
class ExposurePeriod:
    """Continuous use of one ingredient: overlapping or adjacent uses collapsed into one period."""

    ingredient: str
    drug_class: str | None  # mechanism class (SSRI, SNRI, TCA, ...) for antidepressants
    roles: frozenset[str]  # e.g. {"antidepressant"}, {"mood-stabilizer-standard"}
    start: datetime | None
    end: datetime | None  # None when ongoing
    ongoing: bool
    uses: tuple[MedicationUse, ...]
    flags: tuple[str, ...] = ()  # union of the uses' flags plus period-level ones

    @property
    def recognition(self) -> Recognition:
        if all(u.recognition is Recognition.NAME for u in self.uses):
            return Recognition.NAME
        return Recognition.CODE


@dataclass(frozen=True, slots=True)
class BloodPressure:
    resource_id: str | None
    when: datetime | None
    systolic: float | None  # mm[Hg]
    diastolic: float | None
    plausible: bool = True  # False: outside the configured plausible range; shown as such, never passes a check

    def evidence(self) -> Evidence:
        s = f"{self.systolic:g}" if self.systolic is not None else "?"
        d = f"{self.diastolic:g}" if self.diastolic is not None else "?"
        shown = f"BP {s}/{d} mmHg" + ("" if self.plausible else " (implausible)")
        return Evidence("Observation", self.resource_id, self.when, shown)


@dataclass(frozen=True, slots=True)
class BodyWeight:
    resource_id: str | None
    when: datetime | None
    kg: float
    as_recorded: str  # e.g. "154 [lb_av]"
    plausible: bool = True  # False: outside the configured plausible range; never used to pass a check or rewrite

    def evidence(self) -> Evidence:
        number, _, unit = self.as_recorded.partition(" ")
        if unit.strip().lower() in ("kg", "kilogram", "kilograms"):
            shown = f"weight {self.kg:g} kg"
        else:
            shown = f"weight {self.kg:.1f} kg (recorded as {number} {_UNIT_WORDS.get(unit, unit)})"
        if not self.plausible:
            shown += " (implausible)"
        return Evidence("Observation", self.resource_id, self.when, shown)


_UNIT_WORDS = {"[lb_av]": "lb", "lb": "lb", "lbs": "lb", "g": "g"}  # UCUM codes in the words on a scale


class Instrument(StrEnum):
    PHQ9 = "PHQ-9"
    MADRS = "MADRS"
    HAMD = "HAM-D"


@dataclass(frozen=True, slots=True)
class SeverityScore:
    resource_id: str | None
    when: datetime | None
    instrument: Instrument
    value: float

    def evidence(self) -> Evidence:
        return Evidence("Observation", self.resource_id, self.when, f"{self.instrument.value} total {self.value:g}")


@dataclass(frozen=True, slots=True)
class PregnancyTest:
    resource_id: str | None
    when: datetime | None
    positive: bool | None  # qualitative result or interpretation flag; None: neither says
    iu_per_l: float | None = None  # quantitative result in IU/L (mIU/mL = IU/L); the rules apply the thresholds
    comparator: str | None = None  # "<", "<=", ">=", ">" as sent with a quantitative result
    unit_unreadable: bool = False  # a quantitative value whose unit could not be read ("hCG not readable")
    value_as_sent: float | None = None  # the quantitative number as sent, whatever its unit (also when unreadable)

    def evidence(self) -> Evidence:
        if self.iu_per_l is not None and not self.unit_unreadable:
            shown = f"hCG {self.comparator or ''}{self.iu_per_l:g} IU/L"
            if self.positive is not None:
                shown += f" ({'positive' if self.positive else 'negative'})"
        elif self.unit_unreadable:
            shown = "hCG result not readable"
            if self.value_as_sent is not None:
                shown += f" ({self.comparator or ''}{self.value_as_sent:g} in a unit not read)"
        else:
            shown = "hCG test " + {True: "positive", False: "negative", None: "result unreadable"}[self.positive]
        return Evidence("Observation", self.resource_id, self.when, shown)


@dataclass(frozen=True, slots=True)
class Administration:
    """A completed ketamine or esketamine MedicationAdministration."""

    resource_id: str | None
    when: datetime | None
    ingredient: str  # "ketamine" | "esketamine"
    dose_mg: float | None = None  # dosage.dose in mg, when recorded
    dose_mg_per_kg: float | None = None  # dosage.dose when recorded in mg/kg

    def evidence(self) -> Evidence:
        if self.dose_mg is not None:
            given = f"{self.ingredient} {self.dose_mg:g} mg given"
        elif self.dose_mg_per_kg is not None:
            given = f"{self.ingredient} {self.dose_mg_per_kg:g} mg/kg given"
        else:
            given = f"{self.ingredient} given"
        return Evidence("MedicationAdministration", self.resource_id, self.when, given)


@dataclass(frozen=True, slots=True)
class ProcedureFact:
    """A procedure the rules read (electroconvulsive therapy): when it was performed and its name."""

    resource_id: str | None
    when: datetime | None  # performedDateTime, else the end (or start) of performedPeriod
    label: str
    categories: frozenset[str]  # knowledge-base procedure value sets it belongs to ("ect")

    def evidence(self) -> Evidence:
        return Evidence("Procedure", self.resource_id, self.when, self.label)


Reading = BloodPressure | BodyWeight | SeverityScore | PregnancyTest
"""An Observation as the record reads it."""


@dataclass(frozen=True, slots=True)
class AllergyFact:
    """An AllergyIntolerance to ketamine or esketamine (the only substances the rules read)."""

    resource_id: str | None
    drug: str  # "ketamine" | "esketamine"
    substance: str  # as recorded, e.g. "Ketamine hydrochloride" or "Spravato"
    clinical_status: str | None  # active | inactive | resolved, None when absent
    verification_status: str | None  # unconfirmed | presumed | confirmed | refuted | entered-in-error
    type: str | None  # allergy | intolerance, None when absent
    reactions: tuple[str, ...]  # manifestation and description texts, as recorded
    recorded: datetime | None
    recognition: Recognition = Recognition.CODE

    def evidence(self) -> Evidence:
        kind = self.type or "allergy or intolerance"
        reaction = f"; reaction: {', '.join(self.reactions)}" if self.reactions else "; no reaction recorded"
        return Evidence("AllergyIntolerance", self.resource_id, self.recorded, f"{self.substance} ({kind}{reaction})")


@dataclass(frozen=True, slots=True)
class LactationFact:
    """An Observation that says the patient is breastfeeding (a Condition saying so is a ConditionFact)."""

    resource_id: str | None
    when: datetime | None
    text: str  # what it says, e.g. "Breastfeeding status: exclusively breastfeeding"

    def evidence(self) -> Evidence:
        return Evidence("Observation", self.resource_id, self.when, self.text)


@dataclass(frozen=True, slots=True)
class DataGap:
    """Data the service asked for and could not use: the cards say so."""

    key: str  # prefetch key or resource type, e.g. "conditions"
    reason: str  # plain words, no PHI, e.g. "the EHR reported an error while prefetching"


@dataclass(frozen=True, slots=True)
class SkippedResource:
    """A resource that failed validation: skipped, reported in the summary card."""

    resource_type: str
    resource_id: str | None
    problem: str  # e.g. "effectiveDateTime: not a FHIR dateTime"


@dataclass(frozen=True, slots=True)
class SetAside:
    """Records of one kind that were not used, how many and why: the summary line they would have changed says so.

    ``reason`` is plain words that complete "N records ... were not used because they <reason>" style phrases,
    e.g. "are dated in the future", "belong to another patient", "could not be read", "conflict with a copy".
    ``details`` carry what a clinician needs to act, never ids: e.g. "BP 190/120 mmHg dated 2026-12-10".
    ``readings`` are the same set-aside readings as facts (for readings dated in the future and the copies
    that lost to a more cautious one), so that a rule can judge them ("a reading of 190/120 is dated in the
    future: verify") without parsing text. ``reason`` is one of the ``SET_ASIDE_*`` constants below.
    """

    kind: str  # record kind (``record/kinds.py``)
    reason: str
    count: int
    details: tuple[str, ...] = ()
    readings: tuple[Reading, ...] = ()


# Why records were set aside (``SetAside.reason``): plain words after "N <kind> records ... ".
SET_ASIDE_OTHER_PATIENT: Final = "belong to another patient"
SET_ASIDE_FUTURE: Final = "are dated in the future"
SET_ASIDE_CONFLICT: Final = "conflict with another copy of the same record (the more cautious copy was used)"
SET_ASIDE_UNREADABLE: Final = "could not be read"
# The same reasons after "1 <kind> record ..." (a single record: "1 blood pressure record is dated in the future").
SET_ASIDE_SINGULAR: Final[dict[str, str]] = {
    SET_ASIDE_OTHER_PATIENT: "belongs to another patient",
    SET_ASIDE_FUTURE: "is dated in the future",
    SET_ASIDE_CONFLICT: "conflicts with another copy of the same record (the more cautious copy was used)",
}


@dataclass(frozen=True, slots=True)
class Normalisation:
    """A known real-feed deviation that was read safely (the cards say so), e.g. a time without an offset."""

    kind: str  # record kind (``record/kinds.py``)
    what: str  # plain words, e.g. "times without a time-zone offset read as UTC" (``NORMALISED_*`` below)
    count: int


# What was read safely (``Normalisation.what``); the time-zone one names the zone it was read in.
NORMALISED_NO_OFFSET: Final = "times without a time-zone offset read as {zone} time"
NORMALISED_LONE_OBJECT: Final = "a single entry sent where a list belongs, read as a list"
NORMALISED_BP_TEXT: Final = "blood pressure sent as text, read as numbers"
NORMALISED_BP_DECIMALS: Final = "blood pressure with decimals, rounded to whole mmHg"
NORMALISED_CONFLICTING_COPIES: Final = "conflicting copies of one record, each read (the more cautious counts)"


@dataclass(frozen=True, slots=True)
class PatientFacts:
    birth_date: date | None
    gender: str | None
    # the latest day a partial birthDate allows ("1990" -> 1990-12-31, "1990-06" -> 1990-06-30)
    birth_date_latest: date | None = None

    def age_at_least(self, day: date) -> int | None:
        """Age in whole years on ``day`` counted from the latest possible birth date (never over-estimated)."""
        b = self.birth_date_latest or self.birth_date
        if b is None:
            return None
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

    def age_on(self, day: date) -> int | None:
        if self.birth_date is None:
            return None
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Everything the rules may read about the patient, built once per request.

    Sequences are sorted newest first (facts with no date last).
    ``available`` names the data kinds that were obtained (even if empty), so a rule can tell
    "no BP on record" from "BP data could not be obtained".
    """

    patient: PatientFacts
    conditions: tuple[ConditionFact, ...] = ()
    medication_uses: tuple[MedicationUse, ...] = ()
    exposures: tuple[ExposurePeriod, ...] = ()
    blood_pressures: tuple[BloodPressure, ...] = ()
    weights: tuple[BodyWeight, ...] = ()
    scores: tuple[SeverityScore, ...] = ()
    pregnancy_tests: tuple[PregnancyTest, ...] = ()
    administrations: tuple[Administration, ...] = ()
    allergies: tuple[AllergyFact, ...] = ()
    lactation: tuple[LactationFact, ...] = ()
    procedures: tuple[ProcedureFact, ...] = ()
    data_gaps: tuple[DataGap, ...] = ()
    skipped: tuple[SkippedResource, ...] = ()
    available: frozenset[str] = field(default_factory=frozenset)
    set_aside: tuple[SetAside, ...] = ()
    normalised: tuple[Normalisation, ...] = ()

    def conditions_in(self, category: str, *, active_only: bool = True) -> tuple[ConditionFact, ...]:
        return tuple(
            c for c in self.conditions if category in c.categories and (not active_only or c.is_active_for(category))
        )

    def exposures_with_role(self, role: str) -> tuple[ExposurePeriod, ...]:
        return tuple(e for e in self.exposures if role in e.roles)

    def procedures_in(self, category: str) -> tuple[ProcedureFact, ...]:
        """Procedures of a knowledge-base value set ("ect"), newest first."""
        return tuple(p for p in self.procedures if category in p.categories)

    def set_aside_of(self, *kinds: str) -> tuple[SetAside, ...]:
        """What was set aside among the records of these kinds."""
        return tuple(s for s in self.set_aside if s.kind in kinds)

    def normalised_of(self, *kinds: str) -> tuple[Normalisation, ...]:
        """The deviations read safely among the records of these kinds."""
        return tuple(n for n in self.normalised if n.kind in kinds)
