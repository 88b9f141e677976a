"""Observations the rules read: blood pressure, body weight, depression scores, hCG tests.

Codes come from the knowledge base (value sets ``obs-*``, ``result-*``, ``score-*`` and the configured
local score codes), never from literals here. Which Observation is which is decided on the raw JSON
(``kind_of``) so that only the Observations the rules read are validated.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from cds_service.knowledge.model import Knowledge, ValueSet
from cds_service.record import kinds
from cds_service.record.dates import effective_time
from cds_service.record.fhirdata import (
    code_keys,
    codes_of,
    codings_of,
    is_mapping,
    quantity,
    resource_id,
    texts_of,
    usable_number,
)
from cds_service.record.model import (
    NORMALISED_BP_DECIMALS,
    NORMALISED_BP_TEXT,
    BloodPressure,
    BodyWeight,
    Instrument,
    PregnancyTest,
    Reading,
    SeverityScore,
    SkippedResource,
)
from cds_service.record.units import hcg_iu_per_l_factor, is_mm_hg, weight_to_kg

IGNORED_STATUS: Final = frozenset({"entered-in-error", "cancelled"})
# Score ranges are part of each instrument's definition (terminology.md §5), not tunable thresholds.
INSTRUMENT_RANGE: Final = {Instrument.PHQ9: 27.0, Instrument.MADRS: 60.0, Instrument.HAMD: 52.0}
# Separate systolic and diastolic Observations taken this close together are one reading.
BP_PAIRING_WINDOW: Final = timedelta(minutes=10)

BP, SYSTOLIC, DIASTOLIC, WEIGHT, HCG, HCG_QUANT = "bp", "systolic", "diastolic", "weight", "hcg", "hcg-quant"
VITAL_KINDS: Final = frozenset({BP, SYSTOLIC, DIASTOLIC, WEIGHT})
_INSTRUMENT_KIND: Final = {"phq9": Instrument.PHQ9, "madrs": Instrument.MADRS, "hamd": Instrument.HAMD}
# The record kind (``record/kinds.py``) each Observation kind feeds.
RECORD_KIND: Final = {
    BP: kinds.BLOOD_PRESSURE,
    SYSTOLIC: kinds.BLOOD_PRESSURE,
    DIASTOLIC: kinds.BLOOD_PRESSURE,
    WEIGHT: kinds.WEIGHT,
    "phq9": kinds.SCORES,
    "madrs": kinds.SCORES,
    "hamd": kinds.SCORES,
    HCG: kinds.PREGNANCY_TESTS,
    HCG_QUANT: kinds.PREGNANCY_TESTS,
}
# A blood pressure sent as text: "160/100", "160/100 mmHg", "160.5 / 99.5 mm[Hg]".
_BP_TEXT: Final = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*/\s*(\d{1,3}(?:\.\d+)?)\s*(?:mm\s*\[?hg\]?)?\s*$", re.I)
# A quantitative result sent as text: "<5 mIU/mL", "2400 IU/L", "12".
_RESULT_TEXT: Final = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*(\S+)?\s*$")
_COMPARATORS: Final = frozenset({"<", "<=", ">=", ">"})


@dataclass(frozen=True)
class PlausibleRange:
    """Values outside ``[low, high]`` are implausible (clinical-rules.md §10, thresholds.yaml)."""

    low: float
    high: float

    def holds(self, value: float | None) -> bool:
        return value is None or self.low <= value <= self.high


@dataclass(frozen=True)
class ObservationIndex:
    """The observation codes of one Knowledge, indexed for the raw pre-filter."""

    by_code: Mapping[tuple[str, str], str]  # (system, code) -> kind
    score_names: tuple[tuple[str, re.Pattern[str]], ...]  # (kind, whole-word name patterns)
    systolic: frozenset[tuple[str, str]]
    diastolic: frozenset[tuple[str, str]]
    positive: ValueSet
    negative: ValueSet
    score_totals: re.Pattern[str]  # words that say a name is a total (score-total-names)
    score_items: re.Pattern[str]  # words that name a single item (score-item-names)
    systolic_range: PlausibleRange
    diastolic_range: PlausibleRange
    weight_range: PlausibleRange

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
            score_totals=_words_pattern(kb.valueset("score-total-names").text_patterns),
            score_items=_words_pattern(kb.valueset("score-item-names").text_patterns),
            systolic_range=_range(kb, "bp.plausible_systolic"),
            diastolic_range=_range(kb, "bp.plausible_diastolic"),
            weight_range=PlausibleRange(kb.number("weight.plausible_min_kg"), kb.number("weight.plausible_max_kg")),
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
                if any(pattern.search(t) and self.names_a_total(t) for t in texts):
                    return kind
        return None

    def names_a_total(self, text: str) -> bool:
        """A rating-scale name that says total or score and names no single item (clinical-rules.md §1):
        "MADRS total score" is a total, "MADRS item 1 - apparent sadness" and a bare "MADRS" are not."""
        return self.score_totals.search(text) is not None and self.score_items.search(text) is None


@dataclass(frozen=True)
class BpHalf:
    """A stand-alone systolic or diastolic Observation, paired with its partner later."""

    resource_id: str | None
    when: datetime | None
    value: float


@dataclass
class ObservationFacts:
    """What the Observations of one record build said, and what was read safely or could not be read."""

    blood_pressures: list[BloodPressure]
    systolic_halves: list[BpHalf]
    diastolic_halves: list[BpHalf]
    weights: list[BodyWeight]
    scores: list[SeverityScore]
    pregnancy_tests: list[PregnancyTest]
    skipped: list[SkippedResource]
    normalised: Counter[tuple[str, str]] = field(default_factory=Counter)  # (record kind, what) -> count
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (record kind, detail): valid, no value

    @classmethod
    def empty(cls) -> ObservationFacts:
        return cls([], [], [], [], [], [], [])

    def readings(self, ranges: ObservationIndex) -> list[Reading]:
        """Every reading gathered here as a fact (stand-alone BP halves paired)."""
        pairs = pair_blood_pressures(self.systolic_halves, self.diastolic_halves, ranges)
        return [*self.blood_pressures, *pairs, *self.weights, *self.scores, *self.pregnancy_tests]


def read_observation(raw: Mapping[str, Any], kind: str, index: ObservationIndex, out: ObservationFacts) -> None:
    """Add the facts of one validated Observation of ``kind`` to ``out``."""
    rid, when = resource_id(raw), effective_time(raw)
    if kind == BP:
        _read_bp_panel(raw, rid, when, index, out)
    elif kind in (SYSTOLIC, DIASTOLIC):
        value = _pressure(raw.get("valueQuantity"), out)
        if value is None:
            out.unreadable.append((kinds.BLOOD_PRESSURE, _undated_or(when, "a blood pressure record")))
        else:
            (out.systolic_halves if kind == SYSTOLIC else out.diastolic_halves).append(BpHalf(rid, when, value))
    elif kind == WEIGHT:
        _read_weight(raw, rid, when, index, out)
    elif kind in _INSTRUMENT_KIND:
        _read_score(raw, rid, when, _INSTRUMENT_KIND[kind], out)
    elif kind in (HCG, HCG_QUANT):
        out.pregnancy_tests.append(_read_hcg(raw, rid, when, index, qualitative=kind == HCG))


def _read_bp_panel(
    raw: Mapping[str, Any], rid: str | None, when: datetime | None, index: ObservationIndex, out: ObservationFacts
) -> None:
    systolic = diastolic = None
    for component in raw.get("component") or ():
        keys = set(code_keys(component.get("code")))
        if keys & index.systolic:
            systolic = _pressure(component.get("valueQuantity"), out)
        elif keys & index.diastolic:
            diastolic = _pressure(component.get("valueQuantity"), out)
    if systolic is None and diastolic is None and isinstance(raw.get("valueString"), str):
        match = _BP_TEXT.match(raw["valueString"])  # "160/100" or "160/100 mmHg" (clinical-rules.md §10)
        if match:
            out.normalised[(kinds.BLOOD_PRESSURE, NORMALISED_BP_TEXT)] += 1
            systolic, diastolic = (_whole_mm_hg(float(v), out) for v in match.groups())
    if systolic is None and diastolic is None:
        out.unreadable.append((kinds.BLOOD_PRESSURE, _undated_or(when, "a blood pressure record")))
        return
    plausible = index.systolic_range.holds(systolic) and index.diastolic_range.holds(diastolic)
    out.blood_pressures.append(BloodPressure(rid, when, systolic, diastolic, plausible))


def pair_blood_pressures(
    systolic: list[BpHalf], diastolic: list[BpHalf], index: ObservationIndex | None = None
) -> list[BloodPressure]:
    """Stand-alone systolic/diastolic Observations paired by time (same instant or within 10 minutes).

    ``index`` gives the plausible ranges (none: every value plausible).
    """
    readings: list[BloodPressure] = []
    unused = sorted(diastolic, key=lambda h: h.when.timestamp() if h.when else 0.0)

    def reading(rid: str | None, when: datetime | None, s: float | None, d: float | None) -> BloodPressure:
        plausible = index is None or (index.systolic_range.holds(s) and index.diastolic_range.holds(d))
        return BloodPressure(rid, when, s, d, plausible)

    for s in systolic:
        partner = None
        if s.when is not None:
            candidates = [d for d in unused if d.when is not None and abs(d.when - s.when) <= BP_PAIRING_WINDOW]
            if candidates:
                partner = min(candidates, key=lambda d: abs(d.when - s.when))  # type: ignore[operator]
                unused.remove(partner)
        readings.append(reading(s.resource_id, s.when, s.value, partner.value if partner else None))
    readings.extend(reading(d.resource_id, d.when, None, d.value) for d in unused)
    return readings


def caution(reading: Reading, index: ObservationIndex, kb: Knowledge) -> tuple[float, ...]:
    """Sort key: the larger, the more cautious reading of two conflicting copies of one record.

    A prescriber would rather recheck than rely on a doubtful value, so the copy that passes no check wins:
    an implausible reading first; then a BP by severity band (critical, elevated, normal) and value; the
    lower weight (the higher mg/kg figure); the lower score (the one that does not meet an entry threshold);
    a positive or raised hCG over a negative one.
    """
    if isinstance(reading, BloodPressure):
        s, d = reading.systolic or 0.0, reading.diastolic or 0.0
        critical = s >= kb.number("bp.critical_systolic") or d >= kb.number("bp.critical_diastolic")
        elevated = s > kb.number("bp.elevated_systolic") or d > kb.number("bp.elevated_diastolic")
        return (not reading.plausible, 2 if critical else 1 if elevated else 0, s, d)
    if isinstance(reading, BodyWeight):
        return (not reading.plausible, 0, -reading.kg)
    if isinstance(reading, SeverityScore):
        return (0, 0, -reading.value)
    positive = reading.positive is True or reading.unit_unreadable
    return (0, positive, reading.iu_per_l or 0.0, reading.positive is None)


def _read_hcg(
    raw: Mapping[str, Any], rid: str | None, when: datetime | None, index: ObservationIndex, *, qualitative: bool
) -> PregnancyTest:
    """An hCG test: its qualitative result or interpretation, and a quantitative value in IU/L.

    The thresholds (positive, equivocal) are the pregnancy rule's; here only the number, its comparator
    ("<5") and whether its unit could be read. Units (clinical-rules.md §3): [IU]/L = IU/L = U/L = m[IU]/mL =
    mIU/mL; [IU]/mL is x 1000. A value with a unit that is none of these, or with no unit, is unreadable.
    """
    positive = hcg_result(raw, index, qualitative=qualitative)
    number: float | None = None
    unit: str | None = None
    comparator: str | None = None
    value = raw.get("valueQuantity")
    if is_mapping(value):
        number, unit = quantity(value)
        sent = value.get("comparator")
        comparator = sent if sent in _COMPARATORS else None
    elif isinstance(raw.get("valueString"), str):
        match = _RESULT_TEXT.match(raw["valueString"])
        if match:
            comparator, number, unit = match.group(1), usable_number(float(match.group(2))), match.group(3)
    if number is None:
        return PregnancyTest(rid, when, positive)
    factor = hcg_iu_per_l_factor(unit)
    if factor is None:  # never a number in an assumed unit
        return PregnancyTest(rid, when, positive, comparator=comparator, unit_unreadable=True, value_as_sent=number)
    iu_per_l = round(number * factor, 6)
    return PregnancyTest(rid, when, positive, iu_per_l=iu_per_l, comparator=comparator, value_as_sent=number)


def hcg_result(raw: Mapping[str, Any], index: ObservationIndex, *, qualitative: bool) -> bool | None:
    """Positive/negative from valueCodeableConcept, then interpretation, then result text; None if unreadable.

    For a quantitative test only the interpretation is read here (its value is read by ``_read_hcg``).
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


def _pressure(value: object, out: ObservationFacts) -> float | None:
    number, unit = quantity(value)
    if number is None or not is_mm_hg(unit):
        return None
    return _whole_mm_hg(number, out)


def _whole_mm_hg(value: float, out: ObservationFacts) -> float:
    """Rounded half up to whole mmHg (140.5 -> 141), as it is compared and shown (clinical-rules.md §10)."""
    whole = float(math.floor(value + 0.5))
    if whole != value:
        out.normalised[(kinds.BLOOD_PRESSURE, NORMALISED_BP_DECIMALS)] += 1
    return whole


def _undated_or(when: datetime | None, what: str) -> str:
    return f"{what} dated {when.date().isoformat()}" if when is not None else f"{what} without a date"


def _read_weight(
    raw: Mapping[str, Any], rid: str | None, when: datetime | None, index: ObservationIndex, out: ObservationFacts
) -> None:
    number, unit = quantity(raw.get("valueQuantity"))
    if number is None:
        out.unreadable.append((kinds.WEIGHT, _undated_or(when, "a weight record")))
        return
    kg = weight_to_kg(number, unit)
    if kg is None or kg <= 0:
        problem = f"valueQuantity: weight unit {unit!r} not understood" if kg is None else "valueQuantity: not > 0"
        out.skipped.append(SkippedResource("Observation", rid, problem))
        out.unreadable.append((kinds.WEIGHT, _undated_or(when, "a weight record") + f" ({problem})"))
        return
    kg = round(kg, 3)
    out.weights.append(BodyWeight(rid, when, kg, f"{number:g} {unit}", index.weight_range.holds(kg)))


def _read_score(
    raw: Mapping[str, Any], rid: str | None, when: datetime | None, instrument: Instrument, out: ObservationFacts
) -> None:
    value: float | None = None
    integer = raw.get("valueInteger")
    if isinstance(integer, int) and not isinstance(integer, bool):
        value = usable_number(integer)
    else:
        value, _unit = quantity(raw.get("valueQuantity"))
    what = f"a {instrument.value} record"
    if value is None:
        out.unreadable.append((kinds.SCORES, _undated_or(when, what)))
        return
    if not 0 <= value <= INSTRUMENT_RANGE[instrument]:
        problem = f"value: outside the {instrument.value} range 0-{INSTRUMENT_RANGE[instrument]:g}"
        out.skipped.append(SkippedResource("Observation", rid, problem))
        out.unreadable.append((kinds.SCORES, _undated_or(when, what) + f" ({problem})"))
        return
    out.scores.append(SeverityScore(rid, when, instrument, value))


def _range(kb: Knowledge, prefix: str) -> PlausibleRange:
    return PlausibleRange(kb.number(f"{prefix}_min"), kb.number(f"{prefix}_max"))


def _words_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive regex matching any of ``words`` as whole words (never matches when empty)."""
    alternatives = "|".join(re.escape(w) for w in words) or r"(?!x)x"
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)


def _contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None


