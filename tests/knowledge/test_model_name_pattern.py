"""The one-pattern name fallback finds exactly what a whole-word search of every name finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.knowledge.loader import default_knowledge
from cds_service.knowledge.model import Ingredient, MedicationCatalog, _contains_word

KB = default_knowledge()


def _reference(catalog: MedicationCatalog, texts: list[str | None]) -> tuple[str, ...]:
    """The name-by-name search the pattern replaces."""
    found: list[str] = []
    for t in texts:
        if not t:
            continue
        for ing in catalog.ingredients.values():
            if any(_contains_word(t.lower(), n) for n in (ing.name.lower(), *ing.synonyms)):
                found.append(ing.key)
    return tuple(dict.fromkeys(found))


def _ingredient(key: str, *synonyms: str) -> Ingredient:
    return Ingredient(key, None, key, frozenset(), None, None, synonyms)


OVERLAPPING = MedicationCatalog(
    ingredients={
        i.key: i
        for i in (
            _ingredient("lithium"),
            _ingredient("carbonate", "lithium carbonate er"),
            _ingredient("ketamine"),
            _ingredient("esketamine", "es ketamine"),
            _ingredient("b", "a b", "b c"),
            _ingredient("a"),
        )
    },
    products={},
    ingredient_codes={},
)
_NAMES = sorted(
    {n for c in (KB.medications, OVERLAPPING) for i in c.ingredients.values() for n in (i.name, *i.synonyms)}
)
_text = st.lists(
    st.one_of(st.sampled_from(_NAMES), st.sampled_from([" ", "-", "/", "_", "1", "é", "x", "ES", " mg ", ""])),
    max_size=6,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), _text), max_size=3), st.booleans())
def test_pattern_matches_the_word_by_word_search(texts: list[str | None], upper: bool) -> None:
    texts = [t.upper() if t and upper else t for t in texts]
    for catalog in (KB.medications, OVERLAPPING):
        assert catalog.ingredients_for_text(texts) == _reference(catalog, texts)


def test_overlapping_names_are_all_found() -> None:
    assert OVERLAPPING.ingredients_for_text(["Lithium Carbonate ER 300 mg"]) == ("lithium", "carbonate")
    assert OVERLAPPING.ingredients_for_text(["a b c"]) == ("b", "a")
    assert OVERLAPPING.ingredients_for_text(["esketamine"]) == ("esketamine",)
    assert OVERLAPPING.ingredients_for_text(["es ketamine"]) == ("ketamine", "esketamine")
