"""The alert-burden command: cards per topic and indicator over the library, mean cards per ketamine order, and
the version-2 targets (clean orders get one card; the mean over the version-1 orders falls)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.sandbox.burden import Burden, measure, render_text
from cds_service.sandbox.fixtures import load_manifest
from tests.clock import NOW

MANIFEST = load_manifest()
BEFORE = json.loads((Path(__file__).resolve().parents[2] / "docs" / "alert-burden-v1.json").read_text())


@pytest.fixture(scope="module")
def burden() -> Burden:
    return measure(MANIFEST, now=NOW)  # the clock the manifest's expectations are tested on


def test_counts_match_the_manifest(burden: Burden) -> None:
    expected: Counter[tuple[str, str]] = Counter(c.as_tuple() for e in MANIFEST.entries for c in e.expected)
    counted = Counter({(t, i): n for t, counts in burden.per_topic.items() for i, n in counts.items()})
    assert counted == expected
    assert len(burden.ketamine_orders) == sum(1 for e in MANIFEST.entries if e.order_template != "oral-sertraline-50mg")
    assert burden.mean_cards() == pytest.approx(burden.cards / len(burden.ketamine_orders))
    besides = sum(1 for f in burden.ketamine_orders for t, _i in f.cards if t != "eligibility-summary")
    assert burden.mean_beyond_summary() == pytest.approx(besides / len(burden.ketamine_orders))


def test_clean_orders_get_one_card_and_the_mean_falls(burden: Burden) -> None:
    cards = {f.name: f.cards for f in burden.fixtures}
    for clean in ("eligible-mdd-iv", "eligible-esketamine-56mg"):
        assert cards[clean] == (("eligibility-summary", "info"),), clean
    v1 = [name for name, got in BEFORE["perFixture"].items() if got]
    before = sum(len(BEFORE["perFixture"][n]) for n in v1) / len(v1)
    after = sum(len(cards[n]) for n in v1) / len(v1)
    assert before == pytest.approx(BEFORE["meanCardsPerKetamineOrder"], abs=1e-3)
    assert after < before


def test_the_command_prints_the_table_and_json(capsys: pytest.CaptureFixture[str], burden: Burden) -> None:
    assert main(["fixtures", "burden", "--now", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    assert out == render_text(burden)
    assert "| `eligibility-summary` | 0 | 0 |" in out and "mean cards per ketamine order: " in out
    assert main(["fixtures", "burden", "--format", "json", "--hook", "order-select"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["hook"] == "order-select" and doc["ketamineOrders"] == len(burden.ketamine_orders)
    assert main(["fixtures", "burden", "--fixtures-dir", "/nonexistent"]) == 2
