"""openapi.yaml: a valid OpenAPI 3.1 document whose examples validate against its own schemas, that
documents every route of the app and every error status the service answers with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cds_service.hooks.schemas import openapi_document

ROOT = Path(__file__).resolve().parents[2]
DOC_URI = "urn:test:openapi"


def test_document_is_valid_openapi_31() -> None:
    doc = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_package_copy_is_the_same_document() -> None:
    link = ROOT / "cds_service" / "openapi.yaml"
    assert link.is_symlink() and link.resolve() == (ROOT / "openapi.yaml").resolve()
    assert openapi_document() == yaml.safe_load((ROOT / "openapi.yaml").read_text())


def _examples() -> Iterator[tuple[str, dict[str, Any], Any]]:
    doc = openapi_document()

    def media_types(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            content = node.get("content")
            if isinstance(content, dict):
                for mtype, media in content.items():
                    yield f"{where} {mtype}", media
            for key, value in node.items():
                if key != "content":
                    yield from media_types(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from media_types(value, f"{where}[{i}]")

    for where, media in media_types({"paths": doc["paths"], "responses": doc["components"]["responses"]}, ""):
        if "schema" not in media:
            continue
        if "example" in media:
            yield where, media["schema"], media["example"]
        for name, example in (media.get("examples") or {}).items():
            yield f"{where} #{name}", media["schema"], example["value"]


EXAMPLES = list(_examples())


def test_there_are_examples_for_requests_responses_and_errors() -> None:
    wheres = " ".join(w for w, _, _ in EXAMPLES)
    assert "requestBody" in wheres and "200" in wheres and "BadRequest" in wheres and "PreconditionFailed" in wheres
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize(("where", "schema", "example"), EXAMPLES, ids=[w for w, _, _ in EXAMPLES])
def test_example_validates_against_its_schema(where: str, schema: dict[str, Any], example: Any) -> None:
    doc = dict(openapi_document())
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    wrapped = _rebase(schema)
    errors = list(Draft202012Validator(wrapped, registry=registry).iter_errors(example))
    assert errors == [], [e.message for e in errors]


def _rebase(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (f"{DOC_URI}{v}" if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def test_invalid_examples_are_caught() -> None:
    """The check above can fail: a card with a 140-character summary is rejected by the schema."""
    card = {"summary": "x" * 140, "indicator": "info", "source": {"label": "l"}}
    errors = list(_validator("Card").iter_errors(card))
    assert errors


def _validator(name: str) -> Draft202012Validator:
    from cds_service.hooks.schemas import validator

    return validator(name)


def test_every_app_route_is_documented(kb: Any) -> None:
    from cds_service.web.app import create_app
    from tests.builders.requests import settings

    app = create_app(settings(), kb=kb)
    paths = openapi_document()["paths"]
    documented = {(_flask_path(p), m.upper()) for p, item in paths.items() for m in item if m != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (rule.rule, method) in documented, f"{method} {rule.rule} is not in openapi.yaml"


def _flask_path(path: str) -> str:
    from cds_service.hooks.catalog import SERVICES

    for service_id in SERVICES:  # each service has its own path (its own hook schema)
        path = path.replace(f"/cds-services/{service_id}", "/cds-services/<service_id>")
    return path.replace("{serviceId}", "<service_id>")


@pytest.mark.parametrize("path", ["/cds-services/ketamine-order-sign", "/cds-services/ketamine-order-select"])
@pytest.mark.parametrize("status", ["400", "401", "405", "412", "413", "415", "500"])
def test_service_call_documents_every_error(path: str, status: str) -> None:
    assert status in openapi_document()["paths"][path]["post"]["responses"]


def test_unknown_service_404_is_documented() -> None:
    assert "answers 404" in openapi_document()["info"]["description"]
    assert "NotFound" in openapi_document()["components"]["responses"]


def test_each_service_path_takes_its_own_hook_schema() -> None:
    from cds_service.hooks.catalog import SERVICES

    paths = openapi_document()["paths"]
    for service in SERVICES.values():
        body = paths[f"/cds-services/{service.id}"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith("/" + service.request_schema)
