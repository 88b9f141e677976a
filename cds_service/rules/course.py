"""THE course of treatment (clinical-rules.md §6): one definition for every rule and for patient-view.

A *course* is a run of completed administrations of the same drug (IV ketamine, or esketamine) with no gap
longer than ``course.gap_days`` (8 weeks) between consecutive ones; it begins at the first administration
after such a gap. It is *under way* while its latest administration is within ``course.gap_days`` of now.
Its *pre-course baseline* is the latest depression score within ``course.baseline_days`` (30) before (or on)
its first administration; without one, response cannot be judged.

Pure functions of the record, the knowledge base and ``now``: no rule logic, no card text. The rules that
use it: severity (judged on the baseline during a course), TRD and the concurrent antidepressant (not repeated
as cards during a course), the course review of §6, the esketamine first-dose and frequency rules of §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.knowledge.model import Knowledge
from cds_service.record.model import Administration, PatientRecord, SeverityScore

DAYS_PER_WEEK = 7
DRUGS = ("ketamine", "esketamine")  # a course is of one drug: IV ketamine, or esketamine


@dataclass(frozen=True)
class Course:
    """One course: its administrations (oldest first, all dated) and its pre-course baseline."""

    drug: str  # "ketamine" | "esketamine" (the administrations' ingredient)
    administrations: tuple[Administration, ...]
    baseline: SeverityScore | None

    @property
    def start(self) -> datetime:
        when = self.administrations[0].when
        assert when is not None  # courses are built from dated administrations only
        return when

    @property
    def latest(self) -> datetime:
        when = self.administrations[-1].when
        assert when is not None
        return when

    @property
    def sessions(self) -> int:
        return len(self.administrations)

    def week_of(self, when: datetime) -> int:
        """The course week ``when`` falls in: week 1 is the 7 days from the first administration."""
        return max(0, (when - self.start).days) // DAYS_PER_WEEK + 1

    def days_since_start(self, now: datetime) -> float:
        return (now - self.start).total_seconds() / 86400

    def last_interval_days(self) -> float | None:
        """Days between the two latest administrations (None with a single one)."""
        if self.sessions < 2:
            return None
        earlier = self.administrations[-2].when
        assert earlier is not None
        return (self.latest - earlier).total_seconds() / 86400

    def sessions_within(self, start: datetime, end: datetime) -> int:
        """Administrations dated in [start, end)."""
        return sum(1 for a in self.administrations if a.when is not None and start <= a.when < end)

    def scores_since_start(self, record: PatientRecord) -> tuple[SeverityScore, ...]:
        """Scores after the first administration on the baseline's instrument, newest first."""
        if self.baseline is None:
            return ()
        instrument = self.baseline.instrument
        after = [s for s in record.scores if s.when is not None and s.when > self.start and s.instrument is instrument]
        return tuple(sorted(after, key=lambda s: s.when or self.start, reverse=True))


def _dated(record: PatientRecord, drug: str, now: datetime) -> list[Administration]:
    given = [a for a in record.administrations if a.ingredient == drug and a.when is not None and a.when <= now]
    return sorted(given, key=lambda a: a.when or now)


def courses(record: PatientRecord, kb: Knowledge, now: datetime, drug: str) -> tuple[Course, ...]:
    """Every course of ``drug`` up to ``now``, oldest first."""
    gap = timedelta(days=kb.number("course.gap_days"))
    runs: list[list[Administration]] = []
    for admin in _dated(record, drug, now):
        if runs and (admin.when or now) - (runs[-1][-1].when or now) <= gap:
            runs[-1].append(admin)
        else:
            runs.append([admin])
    return tuple(Course(drug, tuple(run), pre_course_baseline(record, kb, run[0].when or now)) for run in runs)


def course_under_way(record: PatientRecord, kb: Knowledge, now: datetime, drug: str) -> Course | None:
    """The course of ``drug`` under way at ``now`` (its latest administration within ``course.gap_days``)."""
    found = courses(record, kb, now, drug)
    if not found:
        return None
    last = found[-1]
    return last if now - last.latest <= timedelta(days=kb.number("course.gap_days")) else None


def courses_under_way(record: PatientRecord, kb: Knowledge, now: datetime) -> tuple[Course, ...]:
    """The courses under way at ``now``, of either drug (repeated ketamine exposure, whatever the route)."""
    found = (course_under_way(record, kb, now, drug) for drug in DRUGS)
    return tuple(c for c in found if c is not None)


def pre_course_baseline(record: PatientRecord, kb: Knowledge, start: datetime) -> SeverityScore | None:
    """The latest depression score dated within ``course.baseline_days`` before (or on) ``start``."""
    since = start - timedelta(days=kb.number("course.baseline_days"))
    before = [s for s in record.scores if s.when is not None and since <= s.when <= start]
    return max(before, key=lambda s: s.when or start) if before else None
