"""Values derived from a knowledge base (lookup indexes) are built once per knowledge base, never shared."""

from __future__ import annotations

import dataclasses

from cds_service.knowledge.model import Knowledge


def test_a_derived_value_is_built_once_and_kept_with_its_knowledge_base(kb: Knowledge) -> None:
    built: list[Knowledge] = []

    def build(k: Knowledge) -> tuple[str, int]:
        built.append(k)
        return (k.version, len(built))

    first = dataclasses.replace(kb)
    assert first.derived("test.value", build) == (kb.version, 1)
    assert first.derived("test.value", build) == (kb.version, 1)
    assert built == [first]
    other = dataclasses.replace(first, thresholds={**first.thresholds})  # a new knowledge base: nothing derived
    assert other.derived("test.value", build) == (kb.version, 2)
    assert first == other and "test.value" not in repr(first)  # not part of the knowledge base's value
