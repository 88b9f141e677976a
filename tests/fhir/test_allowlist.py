"""fhirServer allowlist, same-server checks and prefetch template tokens."""

from __future__ import annotations

import pytest

from cds_service.config import ConfigError
from cds_service.fhir.allowlist import ServerAllowlist, same_server
from cds_service.fhir.templates import TemplateError, fill, is_supported_token, tokens_in
from cds_service.hooks.catalog import SERVICES, discovery_document


@pytest.mark.parametrize(
    ("server", "allowed"),
    [
        ("https://fhir.example.org/r4", True),
        ("https://fhir.example.org/r4/", True),
        ("https://FHIR.example.org/r4", True),
        ("https://fhir.example.org:443/r4", True),
        ("https://fhir.example.org/r4/tenant-a", True),
        ("https://fhir.example.org/r4-other", False),
        ("https://fhir.example.org", False),
        ("https://fhir.example.org.evil.net/r4", False),
        ("https://fhir.example.org:8443/r4", False),
        ("http://fhir.example.org/r4", False),  # https entry does not admit plain http
        ("https://user:pw@fhir.example.org/r4", False),
        ("https://fhir.example.org/r4?x=1", False),
        ("ftp://fhir.example.org/r4", False),
        ("not a url", False),
        ("http://localhost:8080/fhir", True),  # explicitly allowlisted http sandbox
        ("http://localhost:8081/fhir", False),
        ("https://localhost:8080/fhir", False),
    ],
)
def test_allowlist(server: str, allowed: bool) -> None:
    allowlist = ServerAllowlist(["https://fhir.example.org/r4", "http://localhost:8080/fhir"])
    assert (allowlist.refusal(server) is None) is allowed


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("http://fhir.example.org/r4",
         "fhirServer uses plain http, and the allowlist admits its host only over https"),
        ("https://localhost:8080/fhir",
         "fhirServer uses https, and the allowlist admits its host only over plain http"),
        ("http://localhost:8081/fhir", "fhirServer's port 8081 is not the allowlisted port of its host (8080)"),
        ("https://fhir.example.org:8443/r4", "fhirServer's port 8443 is not the allowlisted port of its host (443)"),
        ("https://fhir.example.org/r5", "fhirServer's path is outside the allowlisted path of its host"),
        ("https://fhir.example.org.evil.net/r4", "fhirServer's host is not on this service's allowlist"),
    ],
)
def test_refusal_names_the_real_difference(server: str, reason: str) -> None:
    """A port mismatch on an http entry is a port mismatch, not "plain http is not allowlisted"."""
    allowlist = ServerAllowlist(["https://fhir.example.org/r4", "http://localhost:8080/fhir"])
    assert allowlist.refusal(server) == reason


def test_empty_allowlist_refuses_everything() -> None:
    allowlist = ServerAllowlist([])
    assert not allowlist
    assert "KETAMINE_CDS_FHIR_SERVER_ALLOWLIST" in (allowlist.refusal("https://fhir.example.org") or "")


@pytest.mark.parametrize("entry", ["fhir.example.org", "https://", "https://u:p@x.org", "https://x.org?a=1", "*"])
def test_malformed_allowlist_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="ALLOWLIST"):
        ServerAllowlist([entry])


def test_same_server() -> None:
    base = "https://fhir.example.org/r4"
    assert same_server("https://fhir.example.org/r4/Condition?page=2", base)
    assert same_server("https://fhir.example.org/r4?_getpages=abc", base)
    assert not same_server("https://fhir.example.org/r5/Condition", base)
    assert not same_server("https://evil.example.net/r4/Condition", base)
    assert not same_server("http://fhir.example.org/r4/Condition", base)


def test_fill_tokens() -> None:
    ctx = {"patientId": "p 1", "userId": "Practitioner/doc-1", "encounterId": "e1"}
    assert fill("Patient/{{context.patientId}}", ctx) == "Patient/p%201"
    assert fill("{{context.userId}}", ctx) == "Practitioner/doc-1"
    assert fill("PractitionerRole?practitioner={{userPractitionerId}}", ctx) == "PractitionerRole?practitioner=doc-1"
    with pytest.raises(TemplateError, match="not a PractitionerRole"):
        fill("{{userPractitionerRoleId}}", ctx)
    with pytest.raises(TemplateError, match="unsupported"):
        fill("Patient/{{context.draftOrders.id}}", ctx)
    with pytest.raises(TemplateError, match="no value"):
        fill("Encounter/{{context.encounterId}}", {"patientId": "p"})


def test_discovery_templates_use_only_allowed_tokens_and_query_forms() -> None:
    doc = discovery_document()
    assert {(s["id"], s["hook"]) for s in doc["services"]} == {
        ("ketamine-order-select", "order-select"), ("ketamine-order-sign", "order-sign"),
        ("ketamine-patient-view", "patient-view")}
    allowed_params = {"patient", "code", "category", "status", "_count", "_sort", "_include", "_id"}
    for service in doc["services"]:
        assert service["title"] and service["description"] and service["usageRequirements"]
        assert {"patient", "conditions", "medicationRequests", "medicationStatements", "bloodPressure",
                "depressionScores", "pregnancyTests", "administrations"} <= set(service["prefetch"])
        assert ("bodyWeight" in service["prefetch"]) is (service["hook"] != "patient-view")  # only a dose needs it
        for template in service["prefetch"].values():
            assert all(is_supported_token(t) for t in tokens_in(template))
            path, _, query = template.partition("?")
            assert "/" not in path or path.count("/") == 1
            for param in filter(None, query.split("&")):
                name = param.split("=")[0]
                assert name in allowed_params, template
                if name == "_sort":
                    assert param.split("=")[1] in ("-date", "date")
    assert "_include=MedicationRequest:medication" in doc["services"][0]["prefetch"]["medicationRequests"]


def test_required_keys_and_page_policy() -> None:
    keys = {p.key: p for p in SERVICES["ketamine-order-sign"].prefetch}
    assert {k for k, p in keys.items() if p.required} == {"patient", "conditions", "medicationRequests"}
    assert not keys["bloodPressure"].follow_pages and "_sort=-date" in keys["bloodPressure"].template
    assert keys["depressionScores"].follow_pages
