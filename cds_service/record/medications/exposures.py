"""Exposure periods: per ingredient, the uses that overlap or touch merged into one period."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import attrgetter

from cds_service.knowledge.model import Knowledge
from cds_service.record.dates import newest_first
from cds_service.record.model import ExposurePeriod, MedicationUse


def merge_exposures(uses: Iterable[MedicationUse], kb: Knowledge) -> list[ExposurePeriod]:
    """Per ingredient, overlapping or touching uses collapse into one period.

    Touching: the next use starts at most ``medications.merge_gap_days`` after the period's documented end
    (refill slack). Successive refills (clinical-rules.md §1): a use whose duration is unknown (a
    MedicationRequest with no supply duration) is joined by a next use that starts at most
    ``medications.refill_gap_days`` after it. The period's end stays the last *documented* date (the last
    refill's start when no end is known): the refill gap links uses, it never stretches a period.

    Uses without a start date cannot be placed in time: they form one period per ingredient with
    ``start=None`` (flagged ``start-unknown``), which proves history but never recency or duration.
    """
    merge_gap = timedelta(days=kb.number("medications.merge_gap_days"))
    refill_gap = timedelta(days=kb.number("medications.refill_gap_days"))
    by_ingredient: dict[str, list[MedicationUse]] = {}
    for use in uses:
        by_ingredient.setdefault(use.ingredient, []).append(use)
    periods: list[ExposurePeriod] = []
    for ingredient, items in by_ingredient.items():
        dated = sorted((u for u in items if u.start is not None), key=lambda u: u.start)  # type: ignore[arg-type,return-value]
        undated = [u for u in items if u.start is None]
        group: list[MedicationUse] = []
        group_end: datetime | None = None
        refill_reach: datetime | None = None  # latest start + refill gap of a use with unknown duration
        group_open = False
        for use in dated:
            assert use.start is not None
            touches = group_end is not None and use.start <= group_end + merge_gap
            refilled = refill_reach is not None and use.start <= refill_reach
            if group and (group_open or touches or refilled):
                group.append(use)
            else:
                if group:
                    periods.append(_period(ingredient, group, kb))
                group = [use]
                group_end, refill_reach, group_open = None, None, False
            group_open = group_open or use.ongoing
            use_end = use.end or use.start
            group_end = use_end if group_end is None else max(group_end, use_end)
            if use.end is None and not use.ongoing:
                reach = use.start + refill_gap
                refill_reach = reach if refill_reach is None else max(refill_reach, reach)
        if group:
            periods.append(_period(ingredient, group, kb))
        if undated:
            periods.append(_period(ingredient, undated, kb))
    return periods


def _period(ingredient: str, uses: list[MedicationUse], kb: Knowledge) -> ExposurePeriod:
    info = kb.medications.ingredients.get(ingredient)
    starts = [u.start for u in uses if u.start is not None]
    ongoing = any(u.ongoing for u in uses)
    ends = [t for t in (u.end or u.start for u in uses) if t is not None]
    flags = [f for u in uses for f in u.flags]
    return ExposurePeriod(
        ingredient=ingredient,
        drug_class=info.drug_class if info else None,
        roles=info.roles if info else frozenset(),
        start=min(starts) if starts else None,
        end=None if ongoing else (max(ends) if ends else None),
        ongoing=ongoing,
        uses=tuple(newest_first(uses, attrgetter("start"))),
        flags=tuple(dict.fromkeys(flags)),
    )
