"""A minimal medication catalog for parser unit tests, independent of the bundled medication data (the route
terms are the bundled ones: the order parser reads routes with the knowledge base's)."""

from __future__ import annotations

import pytest

from cds_service.knowledge.model import Ingredient, Knowledge, MedicationCatalog, Product

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"


def _catalog() -> MedicationCatalog:
    ingredients = {
        "ketamine": Ingredient("ketamine", "6130", "ketamine", frozenset({"ketamine"}), "NMDA antagonist", None,
                               ("ketalar",)),
        "esketamine": Ingredient("esketamine", "2119365", "esketamine", frozenset({"esketamine"}),
                                 "NMDA antagonist", None, ("spravato",)),
        "sertraline": Ingredient("sertraline", "36437", "sertraline", frozenset({"antidepressant"}), "SSRI", 50.0),
    }
    products = {
        (RXNORM, "2201623"): Product("2201623", "esketamine Nasal Spray", ("esketamine",)),
        (RXNORM, "2201625"): Product("2201625", "esketamine Nasal Spray [Spravato]", ("esketamine",)),
        (NDC, "50458-028-02"): Product("50458-028-02", "Spravato 56 mg dose kit", ("esketamine",)),
        (RXNORM, "312941"): Product("312941", "sertraline 50 MG Oral Tablet", ("sertraline",)),
    }
    codes = {(RXNORM, "6130"): "ketamine", (RXNORM, "2119365"): "esketamine", (RXNORM, "36437"): "sertraline"}
    return MedicationCatalog(ingredients=ingredients, products=products, ingredient_codes=codes)


@pytest.fixture(scope="session")
def catalog_kb() -> Knowledge:
    from cds_service.knowledge.loader import load_knowledge

    return Knowledge(version="test", valuesets={}, medications=_catalog(), thresholds={}, topics={}, seeds={},
                     routes=load_knowledge().routes)
