"""The TRD score windows found by bisection are the ones a scan of ``record.scores`` finds (ties included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.record.model import Instrument, SeverityScore
from cds_service.rules.trd import ScoreTimeline

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_scores = st.lists(
    st.builds(
        SeverityScore,
        resource_id=st.text("abc", min_size=1, max_size=3),
        when=st.one_of(st.none(), st.integers(0, 20).map(lambda d: T0 + timedelta(days=d))),
        instrument=st.sampled_from(list(Instrument)),
        value=st.integers(0, 27).map(float),
    ),
    max_size=25,
)
_day = st.integers(-2, 22).map(lambda d: T0 + timedelta(days=d))


def _scan_window(scores: list[SeverityScore], low: datetime, high: datetime) -> list[SeverityScore]:
    inside = [s for s in scores if s.when is not None and low <= s.when <= high]
    return sorted(inside, key=lambda s: s.when or low, reverse=True)


def _scan_newest(scores: list[SeverityScore], instrument: Instrument, low: datetime, high: datetime):
    inside = [s for s in scores if s.when is not None and s.instrument is instrument and low <= s.when <= high]
    return max(inside, key=lambda s: s.when or low) if inside else None


@settings(max_examples=300, deadline=None)
@given(_scores, _day, _day, st.sampled_from(list(Instrument)))
def test_windows_match_a_scan(scores: list[SeverityScore], low: datetime, high: datetime, instrument: Instrument):
    timeline = ScoreTimeline.of(scores)
    assert [id(s) for s in timeline.newest_first(low, high)] == [id(s) for s in _scan_window(scores, low, high)]
    newest = timeline.newest(instrument, low, high)
    assert newest is _scan_newest(scores, instrument, low, high)


def test_bounds_are_inclusive_and_ties_keep_record_order() -> None:
    first = SeverityScore("first", T0, Instrument.PHQ9, 20)
    second = SeverityScore("second", T0, Instrument.PHQ9, 10)
    timeline = ScoreTimeline.of([first, second])
    assert timeline.newest_first(T0, T0) == [first, second]
    assert timeline.newest(Instrument.PHQ9, T0, T0) is first
    assert timeline.newest(Instrument.PHQ9, T0 + timedelta(seconds=1), T0 + timedelta(days=1)) is None
    assert timeline.newest(Instrument.MADRS, T0, T0) is None
