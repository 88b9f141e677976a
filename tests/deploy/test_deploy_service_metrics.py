"""The real app (create_app) after real hook calls: /metrics shows per-service requests, cards per topic
and the FHIR fallback fetches; the benchmark workloads exercise the paths they are named after."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fhir_stub import FhirIndex, make_handler
from benchmarks.floor import create_floor_app
from benchmarks.loadgen import percentile
from benchmarks.workloads import build_workloads, stub_data
from cds_service.config import Settings
from cds_service.hooks.catalog import PREFETCH
from cds_service.web.app import create_app
from tests.deploy.deploy_support import REPO  # noqa: F401  (puts the repository on sys.path for benchmarks)
from tests.deploy.test_deploy_metrics import samples, value
from tests.loopback import serving

SERVICE = "ketamine-order-sign"


@pytest.fixture
def fhir_stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(FhirIndex(stub_data()), 0.0))
    server.daemon_threads = True
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"


def workloads(fhir: str) -> dict[str, Any]:
    return {w.name: w for w in build_workloads(fhir_server=fhir)}


def test_workload_sizes() -> None:
    w = workloads("http://127.0.0.1:1/fhir")
    assert 90 <= w["2-ketamine-typical"].resources <= 130
    assert w["3-ketamine-heavy"].resources >= 3000
    assert w["1-other-drug-heavy-prefetch"].resources >= 3000
    assert "prefetch" not in w["4-ketamine-fhir-fallback"].body


def test_the_patient_view_workload_is_a_heavy_chart_without_depression(tmp_path: Path) -> None:
    w = workloads("http://127.0.0.1:1/fhir")["5-patient-view-not-depressed-heavy"]
    assert (w.body["hook"], w.service_id, w.resources >= 3000) == ("patient-view", "ketamine-patient-view", True)
    assert "draftOrders" not in w.body["context"] and "bodyWeight" not in w.body["prefetch"]
    codes = {e["resource"]["code"]["coding"][0]["code"] for e in w.body["prefetch"]["conditions"]["entry"]}
    assert len(codes) > 3 and not any(code.startswith("F3") for code in codes)
    app = create_app(Settings(auth_enabled=False, database_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}"))
    resp = app.test_client().post(f"/cds-services/{w.service_id}", json=w.body)
    assert (resp.status_code, resp.get_json()) == (200, {"cards": []})


def test_metrics_after_real_hook_calls(tmp_path: Path, fhir_stub: str) -> None:
    app = create_app(Settings(auth_enabled=False, database_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}",
                              fhir_server_allowlist=(fhir_stub,)))
    client = app.test_client()
    w = workloads(fhir_stub)
    before = client.get("/metrics").get_data(as_text=True)

    other = client.post(f"/cds-services/{SERVICE}", json=w["1-other-drug-heavy-prefetch"].body)
    assert other.status_code == 200 and other.get_json() == {"cards": []}
    topics: list[str] = []
    for name in ("2-ketamine-typical", "4-ketamine-fhir-fallback"):
        resp = client.post(f"/cds-services/{SERVICE}", json=w[name].body)
        assert resp.status_code == 200, resp.get_json()
        cards = resp.get_json()["cards"]
        assert cards[0]["source"]["topic"]["code"] == "eligibility-summary"
        topics += [c["source"]["topic"]["code"] for c in cards]
    assert client.post("/cds-services/no-such-service", json={}).status_code == 404

    resp = client.get("/metrics")
    assert resp.status_code == 200
    after = resp.get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"endpoint": "call_service", "service": SERVICE, "status": "200"}
    assert delta("ketamine_cds_http_requests_total", **ok) == 3
    assert delta("ketamine_cds_http_request_duration_seconds_count", **ok) == 3
    assert delta("ketamine_cds_http_requests_total", endpoint="unmatched", service="", status="404") == 1
    assert delta("ketamine_cds_cards_total", service=SERVICE, topic="eligibility-summary", indicator="info") == 2
    card_total = sum(v for (n, _), v in samples(after).items() if n == "ketamine_cds_cards_total") - sum(
        v for (n, _), v in samples(before).items() if n == "ketamine_cds_cards_total")
    assert card_total == len(topics)
    # workload 4: every prefetch key was fetched from the stub, and every fetch succeeded
    assert delta("ketamine_cds_fhir_fetches_total", outcome="ok") >= len(PREFETCH)
    assert sum(v for (n, labels), v in samples(after).items()
               if n == "ketamine_cds_fhir_fetches_total" and ("outcome", "ok") not in labels) == sum(
        v for (n, labels), v in samples(before).items()
        if n == "ketamine_cds_fhir_fetches_total" and ("outcome", "ok") not in labels)


def test_floor_app_parses_like_the_service_and_returns_no_cards() -> None:
    client = create_floor_app(Settings()).test_client()
    body = workloads("http://127.0.0.1:1/fhir")["2-ketamine-typical"].body
    assert client.post("/cds-services/x", json=body).get_json() == {"cards": []}
    bad = client.post("/cds-services/x", data=b"{not json", content_type="application/json")
    assert bad.status_code == 400
    assert bad.get_json()["resourceType"] == "OperationOutcome"
    deep = client.post("/cds-services/x", data=b"[" * 100 + b"]" * 100, content_type="application/json")
    assert deep.status_code == 400


def test_stub_answers_each_prefetch_query_with_its_resources() -> None:
    index = FhirIndex(stub_data())
    bp = index.search("Observation", {"code": ["http://loinc.org|85354-9,http://loinc.org|55284-4"],
                                      "_sort": ["-date"], "_count": ["20"]})
    assert 0 < len(bp["entry"]) <= 20
    assert all(e["resource"]["code"]["coding"][0]["code"] == "85354-9" for e in bp["entry"])
    dates = [e["resource"]["effectiveDateTime"] for e in bp["entry"]]
    assert dates == sorted(dates, reverse=True)
    scores = index.search("Observation", {"category": ["survey"]})
    assert {e["resource"]["code"]["coding"][0]["code"] for e in scores["entry"]} == {"44261-6"}
    meds = index.search("MedicationRequest", {"_include": ["MedicationRequest:medication"]})
    assert {e["search"]["mode"] for e in meds["entry"]} == {"match", "include"}
    assert index.read("Patient", "bench-patient-1") is not None


@pytest.mark.parametrize(("values", "pct", "expected"), [
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
    ([1.0, 2.0, 3.0, 4.0], 99, 4.0),
    (list(map(float, range(1, 101))), 95, 95.0),
    ([], 50, 0.0),
])
def test_percentile_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


def test_invented_service_ids_never_become_labels(tmp_path: Path) -> None:
    """Unauthenticated calls to made-up service paths are counted without their path in a label."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwk["kid"] = "k1"
    trusted = tmp_path / "clients.json"
    trusted.write_text(json.dumps({"clients": [{"iss": "https://ehr.example.org", "jwks": {"keys": [jwk]}}]}))
    app = create_app(Settings(auth_enabled=True, trusted_clients_file=str(trusted),
                              public_base_url="https://cds.example.org",
                              database_url=f"sqlite:///{tmp_path / 'fb.sqlite3'}"))
    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    for i in range(3):
        assert client.post(f"/cds-services/invented-{i}", json={}).status_code == 401
    assert client.post(f"/cds-services/{SERVICE}", json={}).status_code == 401
    after = client.get("/metrics").get_data(as_text=True)
    assert "invented" not in after
    assert value(after, "ketamine_cds_http_requests_total", endpoint="call_service", service="", status="401") - value(
        before, "ketamine_cds_http_requests_total", endpoint="call_service", service="", status="401") == 3
    assert value(after, "ketamine_cds_http_requests_total", endpoint="call_service", service=SERVICE,
                 status="401") - value(before, "ketamine_cds_http_requests_total", endpoint="call_service",
                                       service=SERVICE, status="401") == 1


def _result(p50: float, errors: int = 0) -> dict[str, Any]:
    return {"p50_ms": p50, "p95_ms": p50 * 1.5, "p99_ms": p50 * 2, "throughput_rps": 1000 / p50, "errors": errors}


def test_benchmark_table_judges_each_target() -> None:
    from benchmarks.run import table

    floor = {"1-other-drug-heavy-prefetch": _result(30), "2-ketamine-typical": _result(1),
             "3-ketamine-heavy": _result(30), "4-ketamine-fhir-fallback": _result(0.5)}
    service = {"1-other-drug-heavy-prefetch": _result(37), "2-ketamine-typical": _result(1.9),
               "3-ketamine-heavy": _result(95), "4-ketamine-fhir-fallback": _result(130)}
    rows = {line.split(" | ")[0].strip("| "): line for line in table(floor, service, {k: 1 for k in floor}, 100, 9)
            .splitlines()[2:]}
    assert rows["1-other-drug-heavy-prefetch"].endswith("| NO |")  # 1.23 > 1.2
    assert rows["2-ketamine-typical"].endswith("| yes |")  # 1.9 <= 2
    assert rows["3-ketamine-heavy"].endswith("| NO |")  # 3.17 > 3
    assert "| yes (+128 ms over workload 2) |" in rows["4-ketamine-fhir-fallback"]  # < 2 round trips
    service["4-ketamine-fhir-fallback"] = _result(250)
    service["2-ketamine-typical"] = _result(1.5, errors=1)
    rows = {line.split(" | ")[0].strip("| "): line for line in table(floor, service, {k: 1 for k in floor}, 100, 9)
            .splitlines()[2:]}
    assert "| NO (+248 ms over workload 2) |" in rows["4-ketamine-fhir-fallback"]
    assert rows["2-ketamine-typical"].endswith("| NO |")  # errors invalidate a result
