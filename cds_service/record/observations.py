"""Observations the rules read: blood pressure, body weight, depression scores, hCG tests.

Codes come from the knowledge base (value sets ``obs-*``, ``result-*``, ``score-*`` and the configured
local score codes), never from literals here. Which Observation is which is decided on the raw JSON
(``kind_of``) so that only the Observations the rules read are validated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cds_service.knowledge.model import Knowledge, ValueSet
from cds_service.record.dates import effective_time
from cds_service.record.fhirdata import code_keys, codes_of, codings_of, quantity, resource_id, texts_of
from cds_service.record.model import (
    BloodPressure,
    BodyWeight,
    Instrument,
    PregnancyTest,
    SeverityScore,
    SkippedResource,
)
from cds_service.record.units import is_mm_hg, weight_to_kg

IGNORED_STATUS: Final = frozenset({"entered-in-error", "cancelled"})
# Score ranges are part of each instrument's definition (terminology.md §5), not tunable thresholds.
INSTRUMENT_RANGE: Final = {Instrument.PHQ9: 27.0, Instrument.MADRS: 60.0, Instrument.HAMD: 52.0}
# Separate systolic and diastolic Observations taken this close together are one reading.
BP_PAIRING_WINDOW: Final = timedelta(minutes=10)

BP, SYSTOLIC, DIASTOLIC, WEIGHT, HCG, HCG_QUANT = "bp", "systolic", "diastolic", "weight", "hcg", "hcg-quant"
VITAL_KINDS: Final = frozenset({BP, SYSTOLIC, DIASTOLIC, WEIGHT})
_INSTRUMENT_KIND: Final = {"phq9": Instrument.PHQ9, "madrs": Instrument.MADRS, "hamd": Instrument.HAMD}


@dataclass(frozen=True)
class ObservationIndex:
    """The observation codes of one Knowledge, indexed for the raw pre-filter."""

    by_code: Mapping[tuple[str, str], str]  # (system, code) -> kind
    score_names: tuple[tuple[str, re.Pattern[str]], ...]  # (kind, whole-word name patterns)
    systolic: frozenset[tuple[str, str]]
    diastolic: frozenset[tuple[str, str]]
    positive: ValueSet
    negative: ValueSet

    @classmethod
    def for_knowledge(cls, kb: Knowledge) -> ObservationIndex:
        """The index of ``kb``, built on first use and kept with it (the knowledge base is read-only)."""
        return kb.derived("record.observation-index", cls.of)

    @classmethod
    def of(cls, kb: Knowledge) -> ObservationIndex:
        by_code: dict[tuple[str, str], str] = {}
        for key, kind in (
            ("obs-bp-panel", BP),
            ("obs-systolic", SYSTOLIC),
            ("obs-diastolic", DIASTOLIC),
            ("obs-body-weight", WEIGHT),
            ("obs-phq9-total", "phq9"),
            ("obs-hcg-qualitative", HCG),
            ("obs-hcg-quantitative", HCG_QUANT),
            ("score-madrs", "madrs"),
            ("score-hamd", "hamd"),
        ):
            for pair in kb.valueset(key).codes:
                by_code.setdefault(pair, kind)
        for instrument, kind in ((Instrument.MADRS, "madrs"), (Instrument.HAMD, "hamd")):
            for pair in kb.local_score_codes.get(instrument.value, ()):
                by_code.setdefault(pair, kind)
        return cls(
            by_code=by_code,
            score_names=(
                ("madrs", _words_pattern(kb.valueset("score-madrs").text_patterns)),
                ("hamd", _words_pattern(kb.valueset("score-hamd").text_patterns)),
            ),
            systolic=kb.valueset("obs-systolic").codes,
            diastolic=kb.valueset("obs-diastolic").codes,
            positive=kb.valueset("result-positive"),
            negative=kb.valueset("result-negative"),
        )

    def kind_of(self, raw: Mapping[str, Any]) -> str | None:
        """Which kind of Observation this is (cheap, on raw JSON); None for ones the rules never read.

        Runs on every Observation obtained (thousands in a heavy record), before validation: the JSON is
        read defensively, a malformed value finds nothing. The usual shape, a first coding the knowledge
        base knows, is answered first; the first matching coding decides either way.
        """
        status = raw.get("status")
        if status != "final" and isinstance(status, str) and status in IGNORED_STATUS:
            return None
        code = raw.get("code")
        if type(code) is dict:
            codings = code.get("coding")
            if type(codings) is list and codings:
                first = codings[0]
                if type(first) is dict:
                    system, value = first.get("system"), first.get("code")
                    if type(system) is str and type(value) is str:
                        kind = self.by_code.get((system, value))
                        if kind is not None:
                            return kind
        return self._kind_of_concept(code)

    def _kind_of_concept(self, code: object) -> str | None:
        """``kind_of`` for any shape of ``Observation.code``: each coding in order, then the score names."""
        if isinstance(code, Mapping):
            by_code = self.by_code
            for coding in codings_of(code):
                if isinstance(coding, Mapping):
                    system, value = coding.get("system"), coding.get("code")
                    if isinstance(system, str) and isinstance(value, str):
                        kind = by_code.get((system, value))
                        if kind is not None:
                            return kind
        texts = texts_of(code)
        if texts:
            for kind, pattern in self.score_names:
                if any(pattern.search(t) for t in texts):
                    return kind
        return None


@dataclass(frozen=True)
class BpHalf:
    """A stand-alone systolic or diastolic Observation, paired with its partner later."""

    resource_id: str | None
    when: datetime | None
    value: float


@dataclass
class ObservationFacts:
    blood_pressures: list[BloodPressure]
    systolic_halves: list[BpHalf]
    diastolic_halves: list[BpHalf]
    weights: list[BodyWeight]
    scores: list[SeverityScore]
    pregnancy_tests: list[PregnancyTest]
    skipped: list[SkippedResource]

    @classmethod
    def empty(cls) -> ObservationFacts:
        return cls([], [], [], [], [], [], [])


def read_observation(raw: Mapping[str, Any], kind: str, index: ObservationIndex, out: ObservationFacts) -> None:
    """Add the facts of one validated Observation of ``kind`` to ``out``."""
    rid, when = resource_id(raw), effective_time(raw)
    if kind == BP:
        systolic = diastolic = None
        for component in raw.get("component") or ():
            keys = set(code_keys(component.get("code")))
            value = _pressure(component.get("valueQuantity"))
            if keys & index.systolic:
                systolic = value
            elif keys & index.diastolic:
                diastolic = value
        if systolic is not None or diastolic is not None:
            out.blood_pressures.append(BloodPressure(rid, when, systolic, diastolic))
    elif kind in (SYSTOLIC, DIASTOLIC):
        value = _pressure(raw.get("valueQuantity"))
        if value is not None:
            (out.systolic_halves if kind == SYSTOLIC else out.diastolic_halves).append(BpHalf(rid, when, value))
    elif kind == WEIGHT:
        _read_weight(raw, rid, when, out)
    elif kind in _INSTRUMENT_KIND:
        _read_score(raw, rid, when, _INSTRUMENT_KIND[kind], out)
    elif kind in (HCG, HCG_QUANT):
        positive = hcg_result(raw, index, qualitative=kind == HCG)
        out.pregnancy_tests.append(PregnancyTest(rid, when, positive))


def pair_blood_pressures(systolic: list[BpHalf], diastolic: list[BpHalf]) -> list[BloodPressure]:
    """Stand-alone systolic/diastolic Observations paired by time (same instant or within 10 minutes)."""
    readings: list[BloodPressure] = []
    unused = sorted(diastolic, key=lambda h: h.when.timestamp() if h.when else 0.0)
    for s in systolic:
        partner = None
        if s.when is not None:
            candidates = [d for d in unused if d.when is not None and abs(d.when - s.when) <= BP_PAIRING_WINDOW]
            if candidates:
                partner = min(candidates, key=lambda d: abs(d.when - s.when))  # type: ignore[operator]
                unused.remove(partner)
        readings.append(BloodPressure(s.resource_id, s.when, s.value, partner.value if partner else None))
    readings.extend(BloodPressure(d.resource_id, d.when, None, d.value) for d in unused)
    return readings


def hcg_result(raw: Mapping[str, Any], index: ObservationIndex, *, qualitative: bool) -> bool | None:
    """Positive/negative from valueCodeableConcept, then interpretation, then result text; None if unreadable.

    Quantitative hCG has no verified positivity cut-off: only its interpretation is read.
    """
    concepts: list[object] = []
    if qualitative:
        concepts.append(raw.get("valueCodeableConcept"))
    concepts.extend(raw.get("interpretation") or ())
    for concept in concepts:
        codes = codes_of(concept)
        if index.negative.matches_code(codes):
            return False
        if index.positive.matches_code(codes):
            return True
    if not qualitative:
        return None
    texts = list(texts_of(raw.get("valueCodeableConcept")))
    if isinstance(raw.get("valueString"), str):
        texts.append(raw["valueString"])
    for text in texts:
        low = text.strip().lower()
        if any(_contains_word(low, p) for p in index.negative.text_patterns):
            return False
        if any(_contains_word(low, p) for p in index.positive.text_patterns):
            return True
    return None


def _pressure(value: object) -> float | None:
    number, unit = quantity(value)
    if number is None or not is_mm_hg(unit):
        return None
    return number


def _read_weight(raw: Mapping[str, Any], rid: str | None, when: datetime | None, out: ObservationFacts) -> None:
    number, unit = quantity(raw.get("valueQuantity"))
    if number is None:
        return
    kg = weight_to_kg(number, unit)
    if kg is None or kg <= 0:
        problem = f"valueQuantity: weight unit {unit!r} not understood" if kg is None else "valueQuantity: not > 0"
        out.skipped.append(SkippedResource("Observation", rid, problem))
        return
    out.weights.append(BodyWeight(rid, when, round(kg, 3), f"{number:g} {unit}"))


def _read_score(
    raw: Mapping[str, Any], rid: str | None, when: datetime | None, instrument: Instrument, out: ObservationFacts
) -> None:
    value: float | None = None
    integer = raw.get("valueInteger")
    if isinstance(integer, int) and not isinstance(integer, bool):
        value = float(integer)
    else:
        value, _unit = quantity(raw.get("valueQuantity"))
    if value is None:
        return
    if not 0 <= value <= INSTRUMENT_RANGE[instrument]:
        limit = f"{INSTRUMENT_RANGE[instrument]:g}"
        out.skipped.append(
            SkippedResource("Observation", rid, f"value: outside the {instrument.value} range 0-{limit}")
        )
        return
    out.scores.append(SeverityScore(rid, when, instrument, value))


def _words_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive regex matching any of ``words`` as whole words (never matches when empty)."""
    alternatives = "|".join(re.escape(w) for w in words) or r"(?!x)x"
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)


def _contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None


