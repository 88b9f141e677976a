"""Build the ``PatientRecord`` once per request from every resource obtained (prefetch and fetches).

Pipeline (clinical-rules.md §10; how each real-feed deviation is read: ``intake.py``, ``normalise.py``):
1. intake: a resource of another patient (``patient_id``) is set aside; copies with the same (resourceType,
   id) become one: identical content once, versions the newest, conflicting copies the more cautious one
   (an Observation: the reading that passes no check, ``observations.caution``; a Condition or a medication
   record: every copy is read, so whatever calls for caution is seen), and the cards say so;
2. pre-filter raw JSON cheaply (resourceType, codes, catalogue ingredients, condition categories) so that
   only resources the rules read are validated;
3. Observations: dates without an offset are read in the configured zone; readings dated more than
   ``records.future_tolerance_hours`` after ``now`` are set aside with their values, **before** the cap;
4. validate with fhir.resources R4B models (one ``Validator`` per build, which reuses the elements it has
   already validated in this build), repairing first what can be read safely (``normalise.Repairs``); what
   is still invalid goes to ``record.skipped`` and ``record.set_aside`` (no PHI in the problem text) and is
   otherwise ignored — never an exception;
5. normalise into typed facts, sorted newest first (at the same instant the more cautious reading first).

Vital signs: only the newest ``vitals.max_readings_per_kind`` (thresholds.yaml) valid readings of each kind
(BP, weight) are validated and kept — the rules read the latest reading in a look-back window, and a heavy
record has thousands. Readings dated in the future never take a place under the cap. A prefetched vital-sign
search arrives partly decoded (``partial.PartialResource``: type, id, status, code, subject and dates, which
is all the intake reads to choose); a reading is completed before it is validated, compared with a copy or
read for anything else, so the record is the one the whole resources give.

Cost: a heavy record repeats itself (every refill names the same drug and dosage), so within one build the
same content is validated, resolved to catalogue ingredients and turned into a daily dose once (keyed by
exact content, ``fhirdata.content_key``); the lookup indexes of the knowledge base are built once per
knowledge base (``Knowledge.derived``). Nothing about a patient outlives the build.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from operator import attrgetter
from typing import Any, Final

from cds_service.knowledge.model import Knowledge
from cds_service.record import allergies, intake, kinds, lactation, procedures
from cds_service.record import conditions as cond
from cds_service.record import observations as obs
from cds_service.record.dates import (
    effective_time,
    effective_timestamp,
    newest_first,
    newest_first_order,
    parse_fhir_datetime,
)
from cds_service.record.fhirdata import content_key, is_mapping, resource_id
from cds_service.record.medications.administrations import administration
from cds_service.record.medications.daily_dose import DailyDoses, request_uses, statement_uses
from cds_service.record.medications.exposures import merge_exposures
from cds_service.record.medications.resolver import MedicationResolver
from cds_service.record.model import (
    NORMALISED_CONFLICTING_COPIES,
    SET_ASIDE_CONFLICT,
    SET_ASIDE_FUTURE,
    SET_ASIDE_OTHER_PATIENT,
    SET_ASIDE_UNREADABLE,
    Administration,
    AllergyFact,
    ConditionFact,
    DataGap,
    LactationFact,
    MedicationUse,
    Normalisation,
    PatientFacts,
    PatientRecord,
    ProcedureFact,
    Reading,
    SetAside,
    SkippedResource,
)
from cds_service.record.normalise import MAX_REPAIRS, Repairs
from cds_service.record.partial import complete
from cds_service.record.validation import Validator

_MEDICATION_TYPES: Final = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
_RECORD_TYPES: Final = frozenset(
    {"Patient", "Condition", "Observation", "Medication", "AllergyIntolerance", "Procedure", *_MEDICATION_TYPES}
)
# The record kind of each resource type but Observation (whose kind depends on its code).
_KIND_OF_TYPE: Final = {
    "Patient": kinds.PATIENT,
    "Condition": kinds.CONDITIONS,
    "Medication": kinds.MEDICATIONS,
    "MedicationStatement": kinds.MEDICATIONS,
    "MedicationRequest": kinds.MEDICATIONS,
    "MedicationAdministration": kinds.ADMINISTRATIONS,
    "AllergyIntolerance": kinds.ALLERGIES,
    "Procedure": kinds.PROCEDURES,
}
# How a record of each kind is named in a set-aside detail ("a blood pressure record dated 2026-11-29: ...").
_NOUN: Final = {
    kinds.PATIENT: "the patient record",
    kinds.CONDITIONS: "a condition",
    kinds.MEDICATIONS: "a medication record",
    kinds.ADMINISTRATIONS: "a ketamine administration",
    kinds.BLOOD_PRESSURE: "a blood pressure record",
    kinds.WEIGHT: "a weight record",
    kinds.SCORES: "a depression score",
    kinds.PREGNANCY_TESTS: "an hCG test",
    kinds.ALLERGIES: "an allergy record",
    kinds.LACTATION: "a breastfeeding record",
    kinds.PROCEDURES: "a procedure",
}
_WHEN: Final = attrgetter("when")  # of observation facts and administrations
_START: Final = attrgetter("start")  # of medication uses and exposure periods


def build_record(
    resources: Iterable[Mapping[str, Any]],
    kb: Knowledge,
    *,
    available: frozenset[str],
    gaps: tuple[DataGap, ...] = (),
    patient_id: str | None = None,
    now: datetime | None = None,
    zone: tzinfo = UTC,
) -> PatientRecord:
    """Normalise the resources into a PatientRecord. Never raises for bad data: it is skipped and reported.

    ``patient_id``: the context patient; resources that name another are set aside (None: no check, e.g. a
    bundle of one patient). ``now``: the evaluation instant; readings dated more than
    ``records.future_tolerance_hours`` after it are set aside (None: no check). ``zone``: where a dateTime
    without an offset is read (``KETAMINE_CDS_LOCAL_TIMEZONE``).
    """
    builder = _Builder(kb, patient_id=patient_id, now=now, zone=zone)
    builder.add_all(resources)
    return builder.finish(available, gaps)


@dataclass
class _Aside:
    """Records of one kind set aside for one reason, while the record is built."""

    count: int = 0
    details: list[str] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)


class _Builder:
    def __init__(self, kb: Knowledge, *, patient_id: str | None, now: datetime | None, zone: tzinfo) -> None:
        self.kb = kb
        self.conditions_index = cond.ConditionIndex.for_knowledge(kb)
        self.observations_index = obs.ObservationIndex.for_knowledge(kb)
        self.patient_id = patient_id
        tolerance = timedelta(hours=kb.number("records.future_tolerance_hours"))
        self.latest_allowed: float | None = None if now is None else (now + tolerance).timestamp()
        self.patient: PatientFacts | None = None
        self.conditions: list[ConditionFact] = []
        self.allergies: list[AllergyFact] = []
        self.lactation: list[LactationFact] = []
        self.procedures: list[ProcedureFact] = []
        self.medication_raw: list[tuple[str, Mapping[str, Any]]] = []
        self.medications_by_id: dict[str, Mapping[str, Any]] = {}
        self.vitals: list[tuple[str, Mapping[str, Any]]] = []
        self.observations = obs.ObservationFacts.empty()
        self.skipped: list[SkippedResource] = []
        self.repairs = Repairs(zone)
        self.normalised: Counter[tuple[str, str]] = Counter()  # besides the repairs: conflicting copies read
        self._aside: dict[tuple[str, str], _Aside] = {}
        self._medication_validity: dict[int, Mapping[str, Any] | None] = {}
        self._condition_categories: dict[Any, cond.Categories] = {}
        self._validator = Validator()

    # ------------------------------------------------------------------ intake

    def add_all(self, resources: Iterable[Mapping[str, Any]]) -> None:
        """Take in every resource of the context patient, one copy of each (type, id): ``intake.py``.

        One pass over what may be thousands of resources: only the types the record reads are looked at
        (the others would be ignored anyway), and Observations, most of a heavy record, are sorted here.
        Copies are gathered first and resolved in the place of the first copy received.
        """
        subjects = None if self.patient_id is None else intake.SubjectCheck(self.patient_id)
        received: list[tuple[str, Any]] = []  # (type, resource) or (type, (type, id)) of a group of copies
        copies: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for resource in resources:
            if not is_mapping(resource):
                continue
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str) or rtype not in _RECORD_TYPES:  # a type the record does not read
                continue
            if subjects is not None and subjects.of_another_patient(resource, rtype):
                self._another_patients(rtype, resource)
                continue
            rid = resource.get("id")
            if isinstance(rid, str) and rid:
                key = (rtype, rid)
                group = copies.get(key)
                if group is None:
                    copies[key] = [resource]
                    received.append((rtype, key))
                else:
                    group.append(resource)
            else:
                received.append((rtype, resource))
        for rtype, item in received:
            if type(item) is not tuple:
                self._add(rtype, item)
            elif len(group := copies[item]) == 1:
                self._add(rtype, group[0])
            else:
                self._add_copies(rtype, group)

    def _another_patients(self, rtype: str, resource: Mapping[str, Any]) -> None:
        kind = self._record_kind(rtype, resource)
        if kind is not None:  # counted, never described: nothing of another patient reaches a card
            self._put_aside(kind, SET_ASIDE_OTHER_PATIENT)

    def _record_kind(self, rtype: str, resource: Mapping[str, Any]) -> str | None:
        if rtype == "Observation":
            kind = self.observations_index.kind_of(resource)
            return None if kind is None else obs.RECORD_KIND[kind]
        return _KIND_OF_TYPE.get(rtype)

    def _add_copies(self, rtype: str, copies: list[Mapping[str, Any]]) -> None:
        """Copies with one type and id: one copy, the newest version, or the more cautious reading."""
        distinct = intake.distinct_copies([complete(c) for c in copies])  # compared whole
        if len(distinct) > 1:
            newest = intake.newest_version(distinct, self.repairs)
            if newest is not None:
                distinct = [newest]
        if len(distinct) == 1:
            self._add(rtype, distinct[0])
        elif rtype == "Observation":
            self._add_cautious_reading(distinct)
        elif rtype == "Patient":
            self._add_youngest_patient(distinct)
        elif rtype == "Medication":  # a definition, not a record: one of them, never by arrival
            self._add(rtype, min(distinct, key=lambda c: content_key(dict(c)) or b""))
        else:
            kind = _KIND_OF_TYPE.get(rtype)
            if kind is not None:
                self.normalised[(kind, NORMALISED_CONFLICTING_COPIES)] += 1
            for copy in distinct:  # every copy is read: a rule that finds cause for caution in one sees it
                self._add(rtype, copy)

    def _add_cautious_reading(self, copies: list[Mapping[str, Any]]) -> None:
        """Of conflicting copies of one Observation, the more cautious reading is used; the others are set
        aside with their values (``observations.caution``)."""
        index = self.observations_index
        kind = next((k for c in copies if (k := index.kind_of(c)) is not None), None)
        if kind is None:
            return
        record_kind = obs.RECORD_KIND[kind]
        candidates: list[tuple[tuple[float, ...], bytes, Mapping[str, Any], Reading | None]] = []
        for copy in copies:
            reading = self._read_aside(kind, copy)
            rank = obs.caution(reading, index, self.kb) if reading is not None else (-1.0,)
            candidates.append((rank, content_key(dict(copy)) or b"", copy, reading))
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)  # ties: by content, never by arrival
        for _rank, _key, _copy, reading in candidates[1:]:
            detail = self._described(reading) if reading is not None else "a copy that could not be read"
            self._put_aside(record_kind, SET_ASIDE_CONFLICT, detail, reading)
        self._add("Observation", candidates[0][2])

    def _add_youngest_patient(self, copies: list[Mapping[str, Any]]) -> None:
        """Conflicting copies of the Patient: the latest birth date (the younger age) counts, which is the
        cautious one for the age rules (a minor, the ages of pregnancy)."""

        def birth(copy: Mapping[str, Any]) -> float:
            born = parse_fhir_datetime(copy.get("birthDate"))
            return born.timestamp() if born is not None else float("-inf")

        ordered = sorted(copies, key=lambda c: (birth(c), content_key(dict(c)) or b""), reverse=True)
        for _copy in ordered[1:]:
            self._put_aside(kinds.PATIENT, SET_ASIDE_CONFLICT)
        self._add("Patient", ordered[0])

    def _add(self, rtype: str, resource: Mapping[str, Any]) -> None:
        if rtype == "Observation":  # most of a heavy record: first
            kind = self.observations_index.kind_of(resource)
            if kind is None:
                self._add_lactation(complete(resource))
                return
            record_kind = obs.RECORD_KIND[kind]
            resource = self.repairs.observation_dates(resource, record_kind)
            if kind in obs.VITAL_KINDS:
                self.vitals.append((kind, resource))  # validated later, newest first, up to the cap
            elif self._in_future(effective_timestamp(resource)):
                self._set_aside_future(kind, resource)
            else:
                valid = self._valid(resource, record_kind)
                if valid is not None:
                    obs.read_observation(valid, kind, self.observations_index, self.observations)
        elif rtype == "Condition":
            self._add_condition(complete(resource))
        elif rtype == "AllergyIntolerance":
            self._add_allergy(complete(resource))
        elif rtype == "Procedure":
            self._add_procedure(complete(resource))
        elif rtype in _MEDICATION_TYPES:
            self.medication_raw.append((rtype, complete(resource)))  # after all Medication resources are known
        elif rtype == "Medication":
            rid = resource_id(resource)
            if rid is not None:
                self.medications_by_id.setdefault(rid, complete(resource))
        elif rtype == "Patient" and self.patient is None:
            valid = self._valid(resource, kinds.PATIENT)
            if valid is not None:
                self.patient = _patient_facts(valid)

    def _add_condition(self, resource: Mapping[str, Any]) -> None:
        if cond.is_ignored(resource):
            return
        categories = cond.raw_categories(resource, self.conditions_index, self._condition_categories)
        if categories.all:
            valid = self._valid(resource, kinds.CONDITIONS)
            if valid is not None:
                self.conditions.append(cond.condition_fact(valid, categories))

    def _add_allergy(self, resource: Mapping[str, Any]) -> None:
        if cond.is_ignored(resource):
            return
        found = allergies.ketamine_drug(resource, self.kb)
        if found is not None:
            valid = self._valid(resource, kinds.ALLERGIES)
            if valid is not None:
                self.allergies.append(allergies.allergy_fact(valid, *found))

    def _add_procedure(self, resource: Mapping[str, Any]) -> None:
        found = procedures.categories(resource, self.kb)
        if found:
            valid = self._valid(resource, kinds.PROCEDURES)
            if valid is not None:
                self.procedures.append(procedures.procedure_fact(valid, found))

    def _add_lactation(self, resource: Mapping[str, Any]) -> None:
        if lactation.lactation_fact(resource, self.kb) is None:
            return
        valid = self._valid(resource, kinds.LACTATION)
        fact = lactation.lactation_fact(valid, self.kb) if valid is not None else None
        if fact is not None:
            self.lactation.append(fact)

    def _valid(self, resource: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
        """The resource as validated (repaired where it can be read safely), or None when it is skipped."""
        resource = complete(resource)
        repaired, problem = self._validator.validate_repairing(resource, self._repairer(kind), MAX_REPAIRS)
        if problem is None:
            return repaired
        self.skipped.append(problem)
        when = effective_time(resource) if resource.get("resourceType") == "Observation" else None
        self._put_aside(kind, SET_ASIDE_UNREADABLE, f"{_noun(kind, when)}: {problem.problem}")
        return None

    def _repairer(self, kind: str) -> Callable[[Mapping[str, Any], Any], Mapping[str, Any] | None]:
        repairs = self.repairs
        return lambda resource, errors: repairs.after_errors(resource, errors, kind)

    def _valid_medication(self, medication: Mapping[str, Any]) -> Mapping[str, Any] | None:
        key = id(medication)
        if key not in self._medication_validity:
            self._medication_validity[key] = self._valid(medication, kinds.MEDICATIONS)
        return self._medication_validity[key]

    # ------------------------------------------------------------------ set aside

    def _in_future(self, timestamp: float | None) -> bool:
        return timestamp is not None and self.latest_allowed is not None and timestamp > self.latest_allowed

    def _set_aside_future(self, kind: str, resource: Mapping[str, Any]) -> None:
        """A reading dated too far after now: set aside, its value kept for the rules and the cards."""
        reading = self._read_aside(kind, resource)
        if reading is not None:
            detail = self._described(reading)
        else:
            detail = f"{_noun(obs.RECORD_KIND[kind], effective_time(resource))} that could not be read"
        self._put_aside(obs.RECORD_KIND[kind], SET_ASIDE_FUTURE, detail, reading)

    def _read_aside(self, kind: str, resource: Mapping[str, Any]) -> Reading | None:
        """The reading of an Observation that is not put in the record (its repairs are not counted)."""
        resource = complete(resource)
        scratch = Repairs(self.repairs.zone)
        resource = scratch.observation_dates(resource, obs.RECORD_KIND[kind])
        repair = lambda r, errors: scratch.after_errors(r, errors, kind)  # noqa: E731
        valid, problem = self._validator.validate_repairing(resource, repair, MAX_REPAIRS)
        if problem is not None:
            return None
        facts = obs.ObservationFacts.empty()
        obs.read_observation(valid, kind, self.observations_index, facts)
        readings = facts.readings(self.observations_index)
        return readings[0] if readings else None

    @staticmethod
    def _described(reading: Reading) -> str:
        """What a clinician needs to act on a set-aside reading: "BP 190/120 mmHg dated 2026-12-10"."""
        when = reading.when
        return f"{reading.evidence().value} " + (f"dated {when.date().isoformat()}" if when else "without a date")

    def _put_aside(self, kind: str, reason: str, detail: str | None = None, reading: Reading | None = None) -> None:
        aside = self._aside.setdefault((kind, reason), _Aside())
        aside.count += 1
        if detail is not None:
            aside.details.append(detail)
        if reading is not None:
            aside.readings.append(reading)

    # ------------------------------------------------------------------ output

    def finish(self, available: frozenset[str], gaps: tuple[DataGap, ...]) -> PatientRecord:
        uses, administrations, unresolved = self._medications()
        # the order received never decides between facts of the same date (ties): their ids do
        uses.sort(key=lambda u: (u.resource_type, u.resource_id or "", u.ingredient))
        administrations.sort(key=lambda a: a.resource_id or "")
        conditions = sorted(self.conditions, key=lambda c: c.resource_id or "")
        self._read_vitals()
        facts = self.observations
        index = self.observations_index
        pressures = facts.blood_pressures + obs.pair_blood_pressures(
            facts.systolic_halves, facts.diastolic_halves, index
        )
        for kind, detail in facts.unreadable:
            self._put_aside(kind, SET_ASIDE_UNREADABLE, detail)
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
            conditions=tuple(newest_first(conditions, lambda c: c.onset or c.recorded)),
            medication_uses=tuple(newest_first(uses, _START)),
            exposures=tuple(newest_first(merge_exposures(uses, self.kb), _START)),
            blood_pressures=tuple(self._newest_first_cautious(pressures)),
            weights=tuple(self._newest_first_cautious(facts.weights)),
            scores=tuple(self._newest_first_cautious(facts.scores)),
            pregnancy_tests=tuple(self._newest_first_cautious(facts.pregnancy_tests)),
            administrations=tuple(newest_first(administrations, _WHEN)),
            allergies=tuple(newest_first(self.allergies, attrgetter("recorded"))),
            lactation=tuple(newest_first(self.lactation, _WHEN)),
            procedures=tuple(newest_first(self.procedures, _WHEN)),
            data_gaps=tuple(all_gaps),
            skipped=tuple(self.skipped + facts.skipped),
            available=available,
            set_aside=self._set_aside(),
            normalised=self._normalised(),
        )

    def _newest_first_cautious(self, readings: list[Any]) -> list[Any]:
        """Newest first; readings taken at the same instant: the more cautious first, whatever the order received."""
        index, kb = self.observations_index, self.kb
        steady = sorted(readings, key=lambda r: r.resource_id or "")
        steady.sort(key=lambda r: obs.caution(r, index, kb), reverse=True)
        return newest_first(steady, _WHEN)

    def _set_aside(self) -> tuple[SetAside, ...]:
        return tuple(
            SetAside(
                kind,
                reason,
                aside.count,
                tuple(sorted(aside.details)),
                tuple(newest_first(sorted(aside.readings, key=lambda r: r.evidence().value), _WHEN)),
            )
            for (kind, reason), aside in sorted(self._aside.items())
        )

    def _normalised(self) -> tuple[Normalisation, ...]:
        counts = self.repairs.counts + self.observations.normalised + self.normalised
        return tuple(Normalisation(kind, what, n) for (kind, what), n in sorted(counts.items()) if n > 0)

    def _medications(self) -> tuple[list[MedicationUse], list[Administration], int]:
        resolver = MedicationResolver(self.kb, self.medications_by_id, self._valid_medication)
        doses = DailyDoses()
        uses: list[MedicationUse] = []
        administrations: list[Administration] = []
        for rtype, resource in self.medication_raw:
            if resource.get("status") == "entered-in-error":
                continue
            resolved = resolver.resolve(resource)
            if resolved is None:
                continue
            valid = self._valid(resource, _KIND_OF_TYPE[rtype])
            if valid is None:
                continue
            if rtype == "MedicationStatement":
                uses.extend(statement_uses(valid, resolved, doses))
            elif rtype == "MedicationRequest":
                uses.extend(request_uses(valid, resolved, doses))
            else:
                administrations.extend(administration(valid, resolved, self.kb))
        return uses, administrations, resolver.unresolved_references

    def _read_vitals(self) -> None:
        """Validate and read the newest vital-sign Observations, up to the cap per kind (BP, weight).

        Newest first by effective time, undated last, ties in the order received. Readings dated too far in
        the future come first in that order: they are set aside and take no place under the cap. An invalid
        reading is skipped (and reported) and the next one counts in its place.
        """
        vitals = self.vitals
        cap = max_vitals_per_kind(self.kb)
        kept_bp = kept_weight = 0
        future = self.latest_allowed is not None
        for i in newest_first_order([resource for _kind, resource in vitals]):
            kind, resource = vitals[i]
            if future:
                if self._in_future(effective_timestamp(resource)):
                    self._set_aside_future(kind, resource)
                    continue
                future = False  # every later one is older
            is_weight = kind == obs.WEIGHT
            if (kept_weight if is_weight else kept_bp) >= cap:
                continue
            valid = self._valid(resource, obs.RECORD_KIND[kind])
            if valid is None:
                continue
            obs.read_observation(valid, kind, self.observations_index, self.observations)
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


def _noun(kind: str, when: datetime | None) -> str:
    noun = _NOUN.get(kind, "a record")
    return f"{noun} dated {when.date().isoformat()}" if when is not None else noun
