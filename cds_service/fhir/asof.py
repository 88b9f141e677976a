"""What was known at an instant: the resources of a record as they stood then. Pure: no I/O, no clock.

``as_of(resources, instant)`` leaves out every resource dated after ``instant`` and undoes what a kept
resource says happened later. Which date counts, per resource type:

| resource type            | dated by ("known from")                                    | a later end date is undone  |
|--------------------------|------------------------------------------------------------|-----------------------------|
| Patient, Medication      | never left out (no clinical date)                          |                             |
| Condition                | the later of ``recordedDate`` and the onset                | ``abatement[x]`` removed;   |
|                          | (``onsetDateTime``, ``onsetPeriod``)                       | ``resolved``, ``inactive``  |
|                          |                                                            | or ``remission`` status     |
|                          |                                                            | becomes ``active``          |
| Observation              | ``effective[x]`` (a period's start, else its end);         |                             |
|                          | ``issued`` only when there is no effective time            |                             |
| MedicationRequest        | ``authoredOn``                                             |                             |
| MedicationStatement      | the later of ``effective[x]`` (start) and ``dateAsserted`` | ``effectivePeriod.end``     |
|                          |                                                            | removed; ``completed`` or   |
|                          |                                                            | ``stopped`` status becomes  |
|                          |                                                            | ``active``                  |
| MedicationAdministration | ``effective[x]`` (a period's start, else its end)          |                             |
| any other type (e.g.     | the later of when it was recorded (``recordedDate``,       |                             |
| AllergyIntolerance)      | ``recorded``, ``dateAsserted``, ``authoredOn``, ``date``,  |                             |
|                          | ``issued``) and when it happened (``effective[x]``,        |                             |
|                          | ``onset[x]``, ``occurrence[x]``, ``performed[x]``)         |                             |

Why these dates:
- A Condition or MedicationStatement recorded after the instant was not known then, whatever onset it states
  (history taken later), and one that starts after the instant had not happened: the later date counts. The
  same holds for the types the service may come to read (an allergy recorded after the order was not known
  at it): a type without a row of its own is dated the same way, from the elements FHIR gives it.
- An Observation counts from when it was taken, as the rules read it: ``issued`` moves on each amendment, and
  a result the prescriber saw must not vanish because it was corrected later.
- A condition that resolved, or a medication that stopped, after the instant was still active then: the end
  date comes from the future, and removing it keeps, for example, a psychosis that was active at the order
  from disappearing. Status changes that carry no date cannot be undone (the export is a snapshot); they
  stay as exported.

Dates are read as the service's record builder reads them: a dateTime without an offset in the deployment's
time zone (``zone``: ``KETAMINE_CDS_LOCAL_TIMEZONE``, default UTC; ``record.normalise``), a partial date from
its first instant (``2026-03-05`` is midnight UTC, so a resource dated on the order's day without a time is
kept; ``record.dates``). A resource with no usable date is kept: it cannot be placed in time, and the record
uses it as history, never as recent.

Replay applies this to the export *before* the prefetch is answered: the EHR, asked at the instant for the
newest 20 blood pressures, would have answered with the newest 20 up to then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from cds_service.record.dates import effective_time, parse_fhir_datetime
from cds_service.record.fhirdata import is_mapping, status_code
from cds_service.record.normalise import Repairs

_RECORDED: Final = ("recordedDate", "recorded", "dateAsserted", "authoredOn", "date", "issued")
_HAPPENED: Final = ("effective", "onset", "occurrence", "performed")  # choice elements: DateTime, Instant, Period
_UNDATED_TYPES: Final = frozenset({"Patient", "Medication"})
_CONDITION_ENDED: Final = frozenset({"resolved", "inactive", "remission"})
_STATEMENT_ENDED: Final = frozenset({"completed", "stopped"})
_CLINICAL_STATUS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def as_of(resources: Iterable[Mapping[str, Any]], instant: datetime, zone: tzinfo = UTC) -> list[Mapping[str, Any]]:
    """The resources known at ``instant`` (a timezone-aware datetime), as they stood then (see module docs).

    Resources are never modified: one whose later end date is undone is returned as a changed copy.
    """
    dates = _Dates(zone)
    kept: list[Mapping[str, Any]] = []
    for resource in resources:
        when = dates.known_from(resource)
        if when is not None and when > instant:
            continue
        kept.append(_as_it_stood(resource, instant, dates))
    return kept


def known_from(resource: Mapping[str, Any], zone: tzinfo = UTC) -> datetime | None:
    """The instant from which ``resource`` was known (module table); None when it has no usable date."""
    return _Dates(zone).known_from(resource)


def read_instant(value: object, zone: tzinfo = UTC) -> datetime | None:
    """A FHIR date or dateTime as the record builder reads it (module docs); None when it is not one."""
    return _Dates(zone).at(value)


class _Dates:
    """FHIR dates read as the record builder reads them, a dateTime without an offset in ``zone``."""

    def __init__(self, zone: tzinfo) -> None:
        self._repairs = Repairs(zone)

    def at(self, value: object) -> datetime | None:
        return parse_fhir_datetime(self._repairs.localise(value) or value)

    def period(self, period: object) -> datetime | None:
        """A period's start, else its end."""
        return (self.at(period.get("start")) or self.at(period.get("end"))) if is_mapping(period) else None

    def effective(self, resource: Mapping[str, Any]) -> datetime | None:
        """effective[x] (a period's start, else its end), then ``issued``, as ``record.dates.effective_time``."""
        return effective_time(self._repairs.observation_dates(resource, "as-of"))

    def known_from(self, resource: Mapping[str, Any]) -> datetime | None:
        rtype = resource.get("resourceType")
        if rtype == "Observation" or rtype == "MedicationAdministration":
            return self.effective(resource)
        if rtype == "MedicationRequest":
            return self.at(resource.get("authoredOn"))
        if rtype == "Condition":
            onset = self.at(resource.get("onsetDateTime")) or self.period(resource.get("onsetPeriod"))
            return _later(onset, self.at(resource.get("recordedDate")))
        if rtype == "MedicationStatement":
            return _later(self.effective(resource), self.at(resource.get("dateAsserted")))
        if rtype in _UNDATED_TYPES:
            return None
        return self.generic(resource)

    def generic(self, resource: Mapping[str, Any]) -> datetime | None:
        """The later of the first recorded date and the first "happened" date a resource has."""
        recorded = next((w for name in _RECORDED if (w := self.at(resource.get(name))) is not None), None)
        happened = None
        for name in _HAPPENED:
            happened = (
                self.at(resource.get(f"{name}DateTime"))
                or self.at(resource.get(f"{name}Instant"))
                or self.period(resource.get(f"{name}Period"))
            )
            if happened is not None:
                break
        return _later(happened, recorded)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _as_it_stood(resource: Mapping[str, Any], instant: datetime, dates: _Dates) -> Mapping[str, Any]:
    rtype = resource.get("resourceType")
    if rtype == "Condition":
        return _condition_then(resource, instant, dates)
    if rtype == "MedicationStatement":
        return _statement_then(resource, instant, dates)
    return resource


def _condition_then(resource: Mapping[str, Any], instant: datetime, dates: _Dates) -> Mapping[str, Any]:
    ended = dates.at(resource.get("abatementDateTime")) or dates.period(resource.get("abatementPeriod"))
    if ended is None or ended <= instant:
        return resource
    then = {k: v for k, v in resource.items() if not k.startswith("abatement")}
    if status_code(resource.get("clinicalStatus")) in _CONDITION_ENDED:
        then["clinicalStatus"] = {"coding": [{"system": _CLINICAL_STATUS_SYSTEM, "code": "active"}]}
    return then


def _statement_then(resource: Mapping[str, Any], instant: datetime, dates: _Dates) -> Mapping[str, Any]:
    period = resource.get("effectivePeriod")
    end = dates.at(period.get("end")) if is_mapping(period) else None
    if end is None or end <= instant or not is_mapping(period):
        return resource
    then = dict(resource)
    then["effectivePeriod"] = {k: v for k, v in period.items() if k != "end"}
    status = resource.get("status")
    if isinstance(status, str) and status in _STATEMENT_ENDED:
        then["status"] = "active"
    return then

