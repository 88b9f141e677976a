"""Build the ``PatientRecord`` once per request from every resource obtained (prefetch and fetches).

Pipeline (clinical-rules.md §10):
1. de-duplicate by (resourceType, id) — the first copy wins;
2. pre-filter raw JSON cheaply (resourceType, codes, catalogue ingredients, condition categories) so that
   only resources the rules read are validated;
3. validate those with fhir.resources R4B models (one ``Validator`` per build, which reuses the elements it
   has already validated in this build); an invalid one goes to ``record.skipped`` (no PHI in the problem
   text) and is otherwise ignored — never an exception;
4. normalise into typed facts, sorted newest first.

Vital signs: only the newest ``vitals.max_readings_per_kind`` (thresholds.yaml) valid readings of each kind
(BP, weight) are validated and kept — the rules read the latest reading in a look-back window, and a heavy
record has thousands.

Cost: a heavy record repeats itself (every refill names the same drug and dosage), so within one build the
same content is validated, resolved to catalogue ingredients and turned into a daily dose once (keyed by
exact content, ``fhirdata.content_key``); the lookup indexes of the knowledge base are built once per
knowledge base (``Knowledge.derived``). Nothing about a patient outlives the build.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import date
from operator import attrgetter
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.record import allergies, lactation
from cds_service.record import conditions as cond
from cds_service.record import medications as meds
from cds_service.record import observations as obs
from cds_service.record.dates import newest_first, newest_first_order, parse_fhir_datetime
from cds_service.record.fhirdata import is_mapping, resource_id
from cds_service.record.model import (
    Administration,
    AllergyFact,
    ConditionFact,
    DataGap,
    LactationFact,
    MedicationUse,
    PatientFacts,
    PatientRecord,
    SkippedResource,
)
from cds_service.record.validation import Validator

_MEDICATION_TYPES: Final = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
_RECORD_TYPES: Final = frozenset(
    {"Patient", "Condition", "Observation", "Medication", "AllergyIntolerance", *_MEDICATION_TYPES}
)
_WHEN: Final = attrgetter("when")  # of observation facts and administrations
_START: Final = attrgetter("start")  # of medication uses and exposure periods


def build_record(
    resources: Iterable[Mapping[str, Any]],
    kb: Knowledge,
    *,
    available: frozenset[str],
    gaps: tuple[DataGap, ...] = (),
) -> PatientRecord:
    """Normalise the resources into a PatientRecord. Never raises for bad data: it is skipped and reported."""
    builder = _Builder(kb)
    builder.add_all(resources)
    return builder.finish(available, gaps)


class _Builder:
    def __init__(self, kb: Knowledge) -> None:
        self.kb = kb
        self.conditions_index = cond.ConditionIndex.for_knowledge(kb)
        self.observations_index = obs.ObservationIndex.for_knowledge(kb)
        self.patient: PatientFacts | None = None
        self.conditions: list[ConditionFact] = []
        self.allergies: list[AllergyFact] = []
        self.lactation: list[LactationFact] = []
        self.medication_raw: list[Mapping[str, Any]] = []
        self.medications_by_id: dict[str, Mapping[str, Any]] = {}
        self.vitals: list[tuple[str, Mapping[str, Any]]] = []
        self.observations = obs.ObservationFacts.empty()
        self.skipped: list[SkippedResource] = []
        self._medication_validity: dict[int, bool] = {}
        self._validator = Validator()

    # ------------------------------------------------------------------ intake

    def add_all(self, resources: Iterable[Mapping[str, Any]]) -> None:
        """Take in every resource, de-duplicated by (resourceType, id): the first copy wins.

        One pass over what may be thousands of resources: only the types the record reads are looked at
        (the others would be ignored anyway), and Observations, most of a heavy record, are sorted here.
        """
        ids_seen: dict[str, set[str]] = {rtype: set() for rtype in _RECORD_TYPES}
        for resource in resources:
            if not is_mapping(resource):
                continue
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str) or rtype not in ids_seen:  # a type the record does not read
                continue
            seen = ids_seen[rtype]
            rid = resource.get("id")
            if isinstance(rid, str) and rid:
                if rid in seen:
                    continue
                seen.add(rid)
            self._add(rtype, resource)

    def _add(self, rtype: str, resource: Mapping[str, Any]) -> None:
        if rtype == "Observation":  # most of a heavy record: first
            kind = self.observations_index.kind_of(resource)
            if kind is None:
                self._add_lactation(resource)
                return
            if kind in obs.VITAL_KINDS:
                self.vitals.append((kind, resource))  # validated later, newest first, up to the cap
            elif self._valid(resource):
                obs.read_observation(resource, kind, self.observations_index, self.observations)
        elif rtype == "Condition":
            self._add_condition(resource)
        elif rtype == "AllergyIntolerance":
            self._add_allergy(resource)
        elif rtype in _MEDICATION_TYPES:
            self.medication_raw.append(resource)  # after all Medication resources are known
        elif rtype == "Medication":
            rid = resource_id(resource)
            if rid is not None:
                self.medications_by_id[rid] = resource
        elif rtype == "Patient" and self.patient is None and self._valid(resource):
            self.patient = _patient_facts(resource)

    def _add_condition(self, resource: Mapping[str, Any]) -> None:
        if cond.is_ignored(resource):
            return
        categories = cond.raw_categories(resource, self.conditions_index)
        if categories.all and self._valid(resource):
            self.conditions.append(cond.condition_fact(resource, categories))

    def _add_allergy(self, resource: Mapping[str, Any]) -> None:
        if cond.is_ignored(resource):
            return
        found = allergies.ketamine_drug(resource, self.kb)
        if found is not None and self._valid(resource):
            self.allergies.append(allergies.allergy_fact(resource, *found))

    def _add_lactation(self, resource: Mapping[str, Any]) -> None:
        fact = lactation.lactation_fact(resource, self.kb)
        if fact is not None and self._valid(resource):
            self.lactation.append(fact)

    def _valid(self, resource: Mapping[str, Any]) -> bool:
        problem = self._validator.validate(resource)
        if problem is not None:
            self.skipped.append(problem)
            return False
        return True

    def _valid_medication(self, medication: Mapping[str, Any]) -> bool:
        key = id(medication)
        if key not in self._medication_validity:
            self._medication_validity[key] = self._valid(medication)
        return self._medication_validity[key]

    # ------------------------------------------------------------------ output

    def finish(self, available: frozenset[str], gaps: tuple[DataGap, ...]) -> PatientRecord:
        uses, administrations, unresolved = self._medications()
        self._read_vitals()
        facts = self.observations
        pressures = facts.blood_pressures + obs.pair_blood_pressures(facts.systolic_halves, facts.diastolic_halves)
        all_gaps = list(gaps)
        if unresolved:
            plural = "s" if unresolved > 1 else ""
            all_gaps.append(
                DataGap(
                    "medications",
                    f"{unresolved} medication reference{plural} could not be resolved to a Medication resource",
                )
            )
        return PatientRecord(
            patient=self.patient or PatientFacts(None, None),
            conditions=tuple(newest_first(self.conditions, lambda c: c.onset or c.recorded)),
            medication_uses=tuple(newest_first(uses, _START)),
            exposures=tuple(newest_first(meds.merge_exposures(uses, self.kb), _START)),
            blood_pressures=tuple(newest_first(pressures, _WHEN)),
            weights=tuple(newest_first(facts.weights, _WHEN)),
            scores=tuple(newest_first(facts.scores, _WHEN)),
            pregnancy_tests=tuple(newest_first(facts.pregnancy_tests, _WHEN)),
            administrations=tuple(newest_first(administrations, _WHEN)),
            allergies=tuple(newest_first(self.allergies, attrgetter("recorded"))),
            lactation=tuple(newest_first(self.lactation, _WHEN)),
            data_gaps=tuple(all_gaps),
            skipped=tuple(self.skipped + facts.skipped),
            available=available,
        )

    def _medications(self) -> tuple[list[MedicationUse], list[Administration], int]:
        resolver = meds.MedicationResolver(self.kb, self.medications_by_id, self._valid_medication)
        doses = meds.DailyDoses()
        uses: list[MedicationUse] = []
        administrations: list[Administration] = []
        for resource in self.medication_raw:
            rtype = resource.get("resourceType")
            if resource.get("status") == "entered-in-error":
                continue
            resolved = resolver.resolve(resource)
            if resolved is None or not self._valid(resource):
                continue
            if rtype == "MedicationStatement":
                uses.extend(meds.statement_uses(resource, resolved, doses))
            elif rtype == "MedicationRequest":
                uses.extend(meds.request_uses(resource, resolved, doses))
            else:
                administrations.extend(meds.administration(resource, resolved, self.kb))
        return uses, administrations, resolver.unresolved_references

    def _read_vitals(self) -> None:
        """Validate and read the newest vital-sign Observations, up to the cap per kind (BP, weight).

        Newest first by effective time, undated last, ties in the order received; an invalid reading is
        skipped (and reported) and the next one counts in its place.
        """
        vitals = self.vitals
        cap = max_vitals_per_kind(self.kb)
        kept_bp = kept_weight = 0
        for i in newest_first_order([resource for _kind, resource in vitals]):
            kind, resource = vitals[i]
            is_weight = kind == obs.WEIGHT
            if (kept_weight if is_weight else kept_bp) >= cap or not self._valid(resource):
                continue
            obs.read_observation(resource, kind, self.observations_index, self.observations)
            if is_weight:
                kept_weight += 1
            else:
                kept_bp += 1
            if kept_bp >= cap and kept_weight >= cap:
                break


def max_vitals_per_kind(kb: Knowledge) -> int:
    """How many of the newest valid readings of each vital-sign kind the record keeps (at least 1)."""
    return max(1, round(kb.number("vitals.max_readings_per_kind")))


def _patient_facts(resource: Mapping[str, Any]) -> PatientFacts:
    raw = resource.get("birthDate")
    birth = parse_fhir_datetime(raw)
    gender = resource.get("gender")
    born = birth.date() if birth else None
    return PatientFacts(born, gender if isinstance(gender, str) else None, _latest_birth_day(raw, born))


def _latest_birth_day(raw: object, born: date | None) -> date | None:
    """The latest day a partial FHIR date allows: "1990" -> 1990-12-31, "1990-06" -> 1990-06-30."""
    if born is None or not isinstance(raw, str):
        return born
    if len(raw.strip()) == 4:
        return date(born.year, 12, 31)
    if len(raw.strip()) == 7:
        return date(born.year, born.month, calendar.monthrange(born.year, born.month)[1])
    return born
