"""What the served-cards metric has counted in this process, for the tests that show a path records no card."""

from __future__ import annotations

from prometheus_client import REGISTRY


def cards_counted() -> float:
    """The sum of every ``ketamine_cds_cards_total`` sample of the default registry."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "ketamine_cds_cards"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
