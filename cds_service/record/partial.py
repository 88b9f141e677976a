"""Resources decoded only as far as the record's intake reads them, the rest on demand.

A heavy record holds thousands of vital-sign readings (five years of daily blood pressures) and the record keeps
only the newest ``vitals.max_readings_per_kind`` valid ones of each kind (``builder.py``). What decides which
ones those are, and which are set aside, is read from a few elements of each reading: its type, id, status,
code, subject and dates (``INTAKE_ELEMENTS``). The edge therefore decodes only those elements of the
Observations of the capped searches (``kinds.CAPPED``) and wraps them in a ``PartialResource``; the builder
asks for the whole resource (``complete``) before it validates one, compares copies, or reads anything else.

A ``PartialResource`` is a ``dict`` of the elements decoded so far, the same values a full decode gives (the last
of duplicate member names wins in both). The builder may change them on a copy (``copied``: dates read in the
configured zone); ``complete`` lays those changes over the whole resource, as if the change had been made to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# What the intake reads of an Observation before it decides to validate it (``builder._Builder.add_all``,
# ``_add``, ``_read_vitals``; ``intake.SubjectCheck``; ``observations.ObservationIndex.kind_of``;
# ``normalise.Repairs.observation_dates``; ``dates.effective_timestamp``). ``tests/record`` checks that it
# reads nothing else of a partial resource.
INTAKE_ELEMENTS: Final = (
    "resourceType", "id", "status", "code", "subject", "patient",
    "effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued",
)  # fmt: skip


class PartialResource(dict[str, Any]):
    """The ``INTAKE_ELEMENTS`` of a resource (those it has), and its whole text (``text``), which the subclass
    made by the decoder of that text knows how to read (``decode``)."""

    __slots__ = ("text",)
    text: Any

    @staticmethod
    def decode(text: Any) -> dict[str, Any]:
        """The whole resource from ``text`` (a new dict each time)."""
        raise NotImplementedError

    def complete(self) -> dict[str, Any]:
        """The whole resource as a plain dict, with the changes made to these elements."""
        resource = self.decode(self.text)
        resource.update(self)
        return resource

    def copied(self) -> PartialResource:
        """A copy whose elements may be changed; it completes to the same resource with those changes."""
        copy = type(self)(self)
        copy.text = self.text
        return copy

    copy = copied  # never a plain dict of some elements that could pass for the whole resource


def complete(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    """``resource`` whole: a partial one completed, any other as it is."""
    return resource.complete() if isinstance(resource, PartialResource) else resource


def copied(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``resource`` that may be changed (a partial one stays partial)."""
    return resource.copied() if isinstance(resource, PartialResource) else dict(resource)
