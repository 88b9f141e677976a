"""Routes of administration are knowledge: read by the loader (``routes.yaml``), versioned, extended by a deployment,
listed on ``/docs/rules``, and the one table the order parser reads ``Dosage.route`` with."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from cds_service.knowledge.docs import render_rules_page
from cds_service.knowledge.loader import KnowledgeError, load_knowledge
from cds_service.order.model import OrderStage, Route
from cds_service.order.parser import parse_order
from tests.builders.requests import ketamine_order

SITE_CODE = {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.698288.330", "code": "15", "display": "Site route 15"}


def _order_with_route(route: dict[str, Any]) -> dict[str, Any]:
    order = ketamine_order()
    order["dosageInstruction"][0]["route"] = route
    return order


def _route(kb: Any, route: dict[str, Any]) -> Route:
    order = _order_with_route(route)
    return parse_order(order, {"resourceType": "Bundle", "entry": [{"resource": order}]}, kb, OrderStage.SIGN).route


def test_the_bundled_routes_are_in_the_knowledge_base(kb: Any) -> None:
    assert kb.routes.version and "terminology.md" in kb.routes.source
    assert kb.routes.codes[("http://snomed.info/sct", "47625008")] == "intravenous"
    assert ("nasal spray", "intranasal") in kb.routes.words
    lengths = [len(word) for word, _ in kb.routes.words]
    assert lengths == sorted(lengths, reverse=True)  # longest first: "nasal spray" before "nasal"


def test_the_parser_reads_routes_with_the_knowledge_base_it_is_given(kb: Any) -> None:
    site = {"coding": [SITE_CODE]}
    assert _route(kb, site) is Route.UNSPECIFIED
    without = dataclasses.replace(kb, routes=dataclasses.replace(kb.routes, codes={}, words=()))
    assert _route(without, {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}) \
        is Route.UNSPECIFIED
    assert _route(kb, {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}) is Route.INTRAVENOUS


def test_a_deployment_adds_route_codes_and_words(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "routes:\n"
        "  intravenous:\n"
        f"    codes: [{{system: \"{SITE_CODE['system']}\", code: \"15\", display: \"Site route 15\"}}]\n"
        "  other:\n"
        "    words: [\"intraosseous\"]\n",
        encoding="utf-8",
    )
    kb = load_knowledge(str(path))
    assert kb.routes.version.endswith("+site") and "+site." in kb.version
    assert _route(kb, {"coding": [SITE_CODE]}) is Route.INTRAVENOUS
    assert _route(kb, {"text": "Intraosseous"}) is Route.OTHER
    assert _route(load_knowledge(), {"text": "Intraosseous"}) is Route.UNSPECIFIED
    page = render_rules_page(kb)
    assert 'id="routes"' in page and "Site route 15" in page and "intraosseous" in page


@pytest.mark.parametrize(
    "text",
    [
        'routes:\n  intramuscular:\n    words: ["im"]\n',
        'routes:\n  other:\n    words: ["x"]\n',
        'routes:\n  other:\n    codes: [{code: "1"}]\n',
    ],
)
def test_a_malformed_route_override_stops_the_start(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeError, match="routes"):
        load_knowledge(str(path))


def test_the_rules_page_lists_every_route_group(kb: Any) -> None:
    page = render_rules_page(kb)
    section = page[page.index('id="routes"'):]
    assert all(f"<td>{group}</td>" in section for group in ("intravenous", "intranasal", "other"))
    assert "47625008" in section
