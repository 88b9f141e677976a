"""The card model: a card that breaks a CDS Hooks rule cannot be built; JSON has no nulls/empties."""

from __future__ import annotations

import uuid

import pytest

from cds_service.cards.model import Action, Card, CardModelError, Coding, Link, Source, Suggestion
from cds_service.hooks.schemas import schema_issues

SOURCE = Source(label="Rule basis", url="https://cds.example.org/docs/rules#psychosis",
                topic=Coding("urn:ketamine-cds:rule", "psychosis", "Psychosis"))


def delete_suggestion(**kw: object) -> Suggestion:
    return Suggestion(label="Remove", actions=(Action("delete", "Remove it", resource_id="MedicationRequest/a1"),),
                      **kw)  # type: ignore[arg-type]


def test_valid_card_serialises_without_nulls_or_empty_arrays() -> None:
    card = Card(summary="Psychosis on record", indicator="critical", source=SOURCE)
    data = card.to_json()
    assert set(data) == {"uuid", "summary", "indicator", "source"}
    assert uuid.UUID(data["uuid"])
    assert data["source"]["topic"] == {"system": "urn:ketamine-cds:rule", "code": "psychosis", "display": "Psychosis"}
    assert schema_issues("Card", data) == []


def test_full_card_validates_against_openapi_schema() -> None:
    card = Card(
        summary="x", indicator="warning", source=SOURCE, detail="**why**",
        suggestions=(delete_suggestion(),), selection_behavior="at-most-one",
        override_reasons=(Coding("urn:ketamine-cds:override-reason", "a", "A reason"),),
        links=(Link("Docs", "https://example.org/x"),),
    )
    data = card.to_json()
    assert data["selectionBehavior"] == "at-most-one"
    assert uuid.UUID(data["suggestions"][0]["uuid"])
    assert schema_issues("Card", data) == []


def test_summary_of_140_characters_is_refused_139_accepted() -> None:
    Card(summary="s" * 139, indicator="info", source=SOURCE)
    with pytest.raises(CardModelError, match="shorter than 140"):
        Card(summary="s" * 140, indicator="info", source=SOURCE)


@pytest.mark.parametrize("indicator", ["hard-stop", "success", "", "Critical"])
def test_unknown_indicator_is_refused(indicator: str) -> None:
    with pytest.raises(CardModelError, match="indicator"):
        Card(summary="x", indicator=indicator, source=SOURCE)


def test_suggestions_require_selection_behavior() -> None:
    with pytest.raises(CardModelError, match="selectionBehavior"):
        Card(summary="x", indicator="critical", source=SOURCE, suggestions=(delete_suggestion(),))


def test_selection_behavior_without_suggestions_is_refused() -> None:
    with pytest.raises(CardModelError, match="only for cards with suggestions"):
        Card(summary="x", indicator="critical", source=SOURCE, selection_behavior="at-most-one")


def test_at_most_one_allows_one_recommended_suggestion_only() -> None:
    one = (delete_suggestion(is_recommended=True), delete_suggestion())
    Card(summary="x", indicator="critical", source=SOURCE, suggestions=one, selection_behavior="at-most-one")
    two = (delete_suggestion(is_recommended=True), delete_suggestion(is_recommended=True))
    with pytest.raises(CardModelError, match="at most one recommended"):
        Card(summary="x", indicator="critical", source=SOURCE, suggestions=two, selection_behavior="at-most-one")
    Card(summary="x", indicator="critical", source=SOURCE, suggestions=two, selection_behavior="any")


def test_override_reason_needs_display() -> None:
    with pytest.raises(CardModelError, match="display"):
        Card(summary="x", indicator="warning", source=SOURCE,
             override_reasons=(Coding("urn:ketamine-cds:override-reason", "a"),))


def test_source_needs_label_and_absolute_url() -> None:
    with pytest.raises(CardModelError, match="label"):
        Source(label=" ")
    with pytest.raises(CardModelError, match="absolute"):
        Source(label="x", url="/docs/rules")


def test_card_and_suggestion_uuids_must_be_uuids() -> None:
    with pytest.raises(CardModelError, match="UUID"):
        Card(summary="x", indicator="info", source=SOURCE, uuid="card-1")
    with pytest.raises(CardModelError, match="UUID"):
        delete_suggestion(uuid="s1")


def test_suggestion_uuids_unique_within_card() -> None:
    u = str(uuid.uuid4())
    with pytest.raises(CardModelError, match="unique"):
        Card(summary="x", indicator="critical", source=SOURCE, selection_behavior="any",
             suggestions=(delete_suggestion(uuid=u), delete_suggestion(uuid=u)))


def test_action_rules() -> None:
    with pytest.raises(CardModelError, match="resourceId"):
        Action("delete", "Remove")
    with pytest.raises(CardModelError, match="not a resource"):
        Action("delete", "Remove", resource={"resourceType": "MedicationRequest"}, resource_id="MedicationRequest/1")
    with pytest.raises(CardModelError, match="needs a FHIR resource"):
        Action("create", "Add")
    with pytest.raises(CardModelError, match="description"):
        Action("update", "", resource={"resourceType": "MedicationRequest"})
    with pytest.raises(CardModelError, match="type"):
        Action("replace", "x", resource={"resourceType": "MedicationRequest"})
    with pytest.raises(CardModelError, match="Type/id"):
        Action("delete", "Remove", resource_id="http://x/MedicationRequest/1")


def test_suggestion_needs_an_action() -> None:
    with pytest.raises(CardModelError, match="at least one Action"):
        Suggestion(label="Nothing", actions=())


def test_link_app_context_only_on_smart_links() -> None:
    Link("App", "https://app.example.org/launch", type="smart", app_context="x")
    with pytest.raises(CardModelError, match="appContext"):
        Link("App", "https://app.example.org/launch", type="absolute", app_context="x")
    with pytest.raises(CardModelError, match=r"Link\.type"):
        Link("App", "https://app.example.org", type="relative")
