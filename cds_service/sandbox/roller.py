"""Date roller: fixtures store dates relative to an anchor and are shifted to the evaluation date on load.

A fixture written with anchor 2026-01-01 and a blood pressure on 2025-12-20 means "12 days before the
evaluation date". ``roll`` shifts every FHIR ``date``/``dateTime``/``instant`` (and so every Period
``start``/``end``) by the whole number of days between the anchor and the target date, keeping each value's
precision (``2019``, ``2019-05``, ``2019-05-04``, ``2019-05-04T09:30:00-05:00``, fractional seconds) and its
zone. A full ``birthDate`` moves so that the age on the evaluation date, in years and days since the last
birthday, is what it was on the anchor: the fixture author's "18 today" stays 18 today whatever leap days lie
between (a plain day shift would drift by a day across them). Partial birth dates shift by days.

The anchor a document currently sits at is recorded in the document itself (a ``meta.tag`` on a Bundle, an
``extension`` key on a CDS Hooks request), so rolling twice to the same date changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

ANCHOR_TAG_SYSTEM = "urn:ketamine-cds:fixture-anchor"
"""``Bundle.meta.tag`` system whose ``code`` is the anchor date (``YYYY-MM-DD``) the bundle's dates sit at."""

ANCHOR_EXTENSION_KEY = "org.ketamine-cds.fixture-anchor"
"""Key in a CDS Hooks request's root ``extension`` object holding the anchor date of its dates."""

# FHIR R4 primitive regexes (https://hl7.org/fhir/R4/datatypes.html), split into parts we can rebuild.
_DATE_RE = re.compile(r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2}))?)?$")
_DATETIME_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?$"
)

# Element names that carry date/dateTime/instant values in the resources fixtures use. Anything ending in
# Date/DateTime/Instant (birthDate, effectiveDateTime, onsetDateTime, valueDateTime...) is also a date.
_DATE_KEYS = frozenset(
    {
        "start",
        "end",
        "issued",
        "authoredOn",
        "date",
        "lastUpdated",
        "recorded",
        "timestamp",
        "dateAsserted",
        "whenPrepared",
        "whenHandedOver",
        "occurrenceInstant",
    }
)
_DATE_SUFFIXES = ("Date", "DateTime", "Instant")


def is_date_key(key: str) -> bool:
    """True for the element names whose string values are FHIR date, dateTime or instant values."""
    return key in _DATE_KEYS or key.endswith(_DATE_SUFFIXES)


def shift_value(value: str, days: int) -> str:
    """Shift one FHIR date/dateTime/instant string by ``days``, keeping its precision and zone.

    Year and year-month values shift their first day and are written back at the same precision.
    Strings that are not FHIR dates are returned unchanged.
    """
    if days == 0:
        return value
    m = _DATETIME_RE.match(value)
    if m:
        shifted = date.fromisoformat(m.group("date")) + timedelta(days=days)
        return f"{shifted.isoformat()}T{m.group('time')}{m.group('zone') or ''}"
    m = _DATE_RE.match(value)
    if m:
        year, month, day = int(m.group("y")), int(m.group("m") or 1), int(m.group("d") or 1)
        shifted = date(year, month, day) + timedelta(days=days)
        if m.group("d"):
            return shifted.isoformat()
        if m.group("m"):
            return f"{shifted.year:04d}-{shifted.month:02d}"
        return f"{shifted.year:04d}"
    return value


def _anniversary(day: date, year: int) -> date:
    """``day`` in ``year``; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)


def shift_birth_date(value: str, start: date, target: date) -> str:
    """A full birth date moved from ``start`` to ``target`` keeping the age in years and days since the birthday.

    Partial or malformed values shift by days, as ``shift_value`` does.
    """
    m = _DATE_RE.match(value)
    if not (m and m.group("d")):
        return shift_value(value, (target - start).days)
    born = date.fromisoformat(value)
    years = start.year - born.year - ((start.month, start.day) < (born.month, born.day))
    since_birthday = (start - _anniversary(born, born.year + years)).days
    last_birthday = target - timedelta(days=since_birthday)
    return _anniversary(last_birthday, last_birthday.year - years).isoformat()


def shift(doc: Any, days: int, *, start: date | None = None) -> Any:
    """Return a copy of ``doc`` (any JSON value) with every FHIR date element shifted by ``days``.

    With ``start`` (the date ``doc``'s dates sit at), full birth dates keep their age (``shift_birth_date``).
    """
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for key, val in doc.items():
            if isinstance(val, str) and key == "birthDate" and start is not None:
                out[key] = shift_birth_date(val, start, start + timedelta(days=days))
            elif isinstance(val, str) and is_date_key(key):
                out[key] = shift_value(val, days)
            elif isinstance(val, list) and is_date_key(key):
                out[key] = [shift_value(v, days) if isinstance(v, str) else shift(v, days, start=start) for v in val]
            else:
                out[key] = shift(val, days, start=start)
        return out
    if isinstance(doc, list):
        return [shift(item, days, start=start) for item in doc]
    return doc


def as_date(when: date | datetime | str) -> date:
    """Accept a date, a datetime (its UTC calendar date is used as given) or an ISO string."""
    if isinstance(when, datetime):
        return when.date()
    if isinstance(when, date):
        return when
    return datetime.fromisoformat(when).date() if "T" in when else date.fromisoformat(when)


def anchor_of(doc: Mapping[str, Any]) -> date | None:
    """The anchor date recorded in a Bundle (``meta.tag``) or a CDS Hooks request (``extension``)."""
    for tag in (doc.get("meta") or {}).get("tag") or ():
        if isinstance(tag, Mapping) and tag.get("system") == ANCHOR_TAG_SYSTEM and tag.get("code"):
            return date.fromisoformat(str(tag["code"]))
    ext = doc.get("extension")
    if isinstance(ext, Mapping) and ext.get(ANCHOR_EXTENSION_KEY):
        return date.fromisoformat(str(ext[ANCHOR_EXTENSION_KEY]))
    return None


def _with_anchor(doc: dict[str, Any], anchor: date) -> dict[str, Any]:
    """Record ``anchor`` in ``doc`` where ``anchor_of`` reads it (tag for resources, extension for requests)."""
    if "resourceType" in doc:
        meta = dict(doc.get("meta") or {})
        tags = [
            t for t in meta.get("tag") or () if not (isinstance(t, Mapping) and t.get("system") == ANCHOR_TAG_SYSTEM)
        ]
        tags.append({"system": ANCHOR_TAG_SYSTEM, "code": anchor.isoformat(), "display": "fixture date anchor"})
        meta["tag"] = tags
        doc["meta"] = meta
    else:
        ext = dict(doc.get("extension") or {})
        ext[ANCHOR_EXTENSION_KEY] = anchor.isoformat()
        doc["extension"] = ext
    return doc


def mark_anchor(doc: Mapping[str, Any], anchor: date | str) -> dict[str, Any]:
    """Return a copy of ``doc`` that records ``anchor`` as the date its dates are relative to."""
    return _with_anchor(dict(doc), as_date(anchor))


def roll(
    doc: Mapping[str, Any], to: date | datetime | str, *, anchor: date | str | None = None
) -> dict[str, Any]:
    """Shift a fixture Bundle or CDS Hooks request so its anchor lands on ``to``.

    The anchor is ``anchor`` when given, else the one recorded in ``doc``; a document with neither is
    refused (``ValueError``) rather than guessed. The result records ``to`` as its new anchor, so rolling it
    again to the same date returns an equal document.
    """
    start = as_date(anchor) if anchor is not None else anchor_of(doc)
    if start is None:
        raise ValueError(
            "no fixture anchor: pass the anchor date, or use a bundle/request written by fhir_fixtures/build.py"
        )
    target = as_date(to)
    rolled: dict[str, Any] = shift(doc, (target - start).days, start=start)
    return _with_anchor(rolled, target)
