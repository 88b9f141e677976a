"""``ketamine-cds evaluate`` (text and json) and ``ketamine-cds fixtures list|load`` against a local FHIR server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cds_service.cli import main
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import load_manifest
from tests.loopback import serving
from tests.sandbox.sandbox_support import card_mismatch, card_pairs

MANIFEST = load_manifest()
DAY = "2026-11-23"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def expected(name: str, hook: str = "order-sign") -> list[tuple[str, str]]:
    return [c.as_tuple() for c in MANIFEST.get(name).expected_for(hook)]


def test_evaluate_json_by_fixture_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", "dose-0.526-mg-per-kg", "--format", "json", "--now", DAY)
    assert code == 0
    response = json.loads(out)
    assert card_mismatch(card_pairs(response), expected("dose-0.526-mg-per-kg")) is None
    assert all(c["summary"] and len(c["summary"]) < 140 for c in response["cards"])


def test_evaluate_text_shows_indicator_summary_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", "bp-160-100", "--now", DAY)
    assert code == 0
    assert out.startswith(f"bp-160-100 · order-sign · evaluated {DAY} · 2 card(s)")
    lines = out.splitlines()
    crit = lines.index("CRITICAL  hypertension-uncontrolled")
    assert lines.index("INFO      eligibility-summary") < crit
    assert "160/100" in lines[crit + 1]  # the summary names the reading
    assert any(line.strip().startswith("| - BP 160/100 mmHg on ") for line in lines[crit:])  # evidence, no ids
    assert "-> suggestion:" in out
    assert "result: MATCHES the manifest" in out


def test_evaluate_bundle_file_with_another_order(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = MANIFEST.root / MANIFEST.get("eligible-mdd-iv").bundle
    code, out, _ = run(
        capsys,
        "evaluate",
        str(bundle),
        "--order",
        "esketamine-85mg",
        "--hook",
        "order-select",
        "--format",
        "json",
        "--now",
        DAY,
    )
    assert code == 0
    pairs = card_pairs(json.loads(out))
    assert ("esketamine-dose-high", "critical") in pairs and pairs[0] == ("eligibility-summary", "info")


def test_evaluate_request_file_and_pinned_clock(capsys: pytest.CaptureFixture[str]) -> None:
    name = "course-nonresponse-two-infusions"
    request = MANIFEST.root / "requests" / name / "order-select.json"
    code, out, _ = run(capsys, "evaluate", str(request), "--format", "json", "--now", DAY)
    assert code == 0
    assert card_mismatch(card_pairs(json.loads(out)), expected(name, "order-select")) is None
    # a year later the same fixture still says the same thing: dates roll with the clock
    code, out, _ = run(capsys, "evaluate", str(request), "--format", "json", "--now", "2027-11-23T08:00:00Z")
    assert card_mismatch(card_pairs(json.loads(out)), expected(name, "order-select")) is None


def test_evaluate_non_ketamine_order_prints_no_cards(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", "non-ketamine-order", "--now", DAY)
    assert code == 0 and "0 card(s)" in out and "no cards" in out


def test_evaluate_rejects_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "evaluate", "no-such-patient")
    assert code == 2 and "no-such-patient" in err
    request = MANIFEST.root / "requests" / "eligible-mdd-iv" / "order-sign.json"
    code, _, err = run(capsys, "evaluate", str(request), "--order", "esketamine-56mg")
    assert code == 2 and "--order" in err
    code, _, err = run(capsys, "evaluate", str(request), "--hook", "order-select")
    assert code == 2 and "does not match" in err
    junk = tmp_path / "junk.json"
    junk.write_text('{"resourceType": "Patient"}', encoding="utf-8")
    code, _, err = run(capsys, "evaluate", str(junk))
    assert code == 2 and "Bundle" in err


def test_evaluate_reports_protocol_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    request = json.loads((MANIFEST.root / "requests" / "eligible-mdd-iv" / "order-sign.json").read_text())
    for key in ("patient", "conditions"):
        del request["prefetch"][key]  # required and no fhirServer to read them from: 412
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    code, _, err = run(capsys, "evaluate", str(path), "--now", DAY)
    assert code == 1 and "412" in err


def test_fixtures_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "fixtures", "list")
    assert code == 0
    assert f"{len(MANIFEST.entries)} fixtures" in out
    assert "esketamine-85mg  [esketamine-85mg]" in out and "esketamine-dose-high:critical" in out


# --- fixtures load against a tiny FHIR transaction endpoint on 127.0.0.1 -------------------------------------
class FhirTransactionServer(ThreadingHTTPServer):
    """Accepts transaction Bundles at /fhir, assigns ids, answers with a transaction-response."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.refuse = False
        self.next_id = 1000

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"


class _Handler(BaseHTTPRequestHandler):
    server: FhirTransactionServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        bundle = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = self.path == "/fhir" and self.headers["Content-Type"] == "application/fhir+json"
        if self.server.refuse or not ok or bundle.get("type") != "transaction":
            issue = {"severity": "error", "code": "processing", "diagnostics": "transaction refused for the test"}
            self._send(400, {"resourceType": "OperationOutcome", "issue": [issue]})
            return
        self.server.received.append(bundle)
        entries = []
        for e in bundle["entry"]:
            self.server.next_id += 1
            loc = f"{e['request']['url']}/{self.server.next_id}/_history/1"
            entries.append({"response": {"status": "201 Created", "location": loc}})
        self._send(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


@pytest.fixture
def fhir_server() -> Iterator[FhirTransactionServer]:
    server = FhirTransactionServer()
    with serving(server):
        yield server


def test_fixtures_load_posts_transactions_and_prints_assigned_ids(
    capsys: pytest.CaptureFixture[str], fhir_server: FhirTransactionServer
) -> None:
    code, out, err = run(
        capsys,
        "fixtures",
        "load",
        "--fhir-server",
        fhir_server.base,
        "--patient",
        "cirrhosis",
        "--patient",
        "mess-eligible-real-feed",
        "--now",
        DAY,
    )
    assert code == 0, err
    assert len(fhir_server.received) == 2
    first = fhir_server.received[0]
    n = len(first["entry"])
    line = next(x for x in out.splitlines() if x.startswith("cirrhosis: "))
    assert line.startswith("cirrhosis: Patient/1001  (")  # the Patient is the first entry
    counts = [int(part.split()[0]) for part in line.split("(", 1)[1].rstrip(")").split(", ")]
    assert sum(counts) == n
    assert "mess-eligible-real-feed: Patient/" in out
    # dates were rolled to the load date, references still point at urn:uuid fullUrls for the server to assign
    assert roller.anchor_of(first) == roller.as_date(DAY)
    assert all(e["fullUrl"].startswith("urn:uuid:") and "id" not in e["resource"] for e in first["entry"])
    assert first["entry"][1]["resource"]["subject"]["reference"] == first["entry"][0]["fullUrl"]


def test_fixtures_load_reports_a_refused_transaction(
    capsys: pytest.CaptureFixture[str], fhir_server: FhirTransactionServer
) -> None:
    fhir_server.refuse = True
    code, _, err = run(capsys, "fixtures", "load", "--fhir-server", fhir_server.base, "--patient", "cirrhosis")
    assert code == 1
    assert "HTTP 400" in err and "transaction refused for the test" in err
    code, _, err = run(capsys, "fixtures", "load", "--fhir-server", fhir_server.base, "--patient", "nobody")
    assert code == 2 and "nobody" in err


def test_fixtures_request_prints_a_rolled_request_the_service_answers(capsys: pytest.CaptureFixture[str]) -> None:
    from cds_service.config import Settings
    from cds_service.web.app import create_app

    assert main(["fixtures", "request", "bp-160-100", "--now", "2027-06-01"]) == 0
    out = capsys.readouterr()
    body = json.loads(out.out)
    assert body["hook"] == "order-sign"
    assert "ketamine-order-sign" in out.err
    assert roller.anchor_of(body) == date(2027, 6, 1)  # rolled: dates now relative to the requested day
    response = (
        create_app(Settings(auth_enabled=False, database_url="sqlite://"))
        .test_client()
        .post("/cds-services/ketamine-order-sign", json=body)
    )
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["source"]["topic"]["code"] == "eligibility-summary"


def test_fixtures_request_rejects_an_unknown_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fixtures", "request", "no-such-patient"]) == 2
    assert "no-such-patient" in capsys.readouterr().err


# --- the library outside a source checkout (non-editable install, Docker image) ----------------------------
@pytest.fixture
def installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox module as if installed in site-packages (no fhir_fixtures/ beside it), run from ``tmp_path``."""
    import cds_service.sandbox.fixtures as fixtures_module

    site = tmp_path / "site-packages" / "cds_service" / "sandbox" / "fixtures.py"
    monkeypatch.setattr(fixtures_module, "__file__", str(site))
    monkeypatch.delenv("KETAMINE_CDS_FIXTURES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ("fixtures", "list"),
        ("fixtures", "load", "--fhir-server", "http://127.0.0.1:9/fhir"),
        ("evaluate", "bp-160-100", "--now", DAY),
        ("fixtures", "request", "bp-160-100"),
    ],
)
def test_missing_library_says_how_to_point_at_it(
    capsys: pytest.CaptureFixture[str], installed_package: Path, argv: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "no fixture library at" in err and str(installed_package / "fhir_fixtures") in err
    assert "--fixtures-dir" in err and "KETAMINE_CDS_FIXTURES_DIR" in err
    assert "Traceback" not in err


def test_bundle_outside_library_names_the_missing_templates(
    capsys: pytest.CaptureFixture[str], installed_package: Path
) -> None:
    bundle = MANIFEST.root / MANIFEST.get("eligible-mdd-iv").bundle
    code, _, err = run(capsys, "evaluate", str(bundle), "--now", DAY)
    assert code == 2
    assert "order template 'iv-ketamine-standard' not found" in err and "--fixtures-dir" in err


def test_installed_package_finds_library_in_working_directory(
    capsys: pytest.CaptureFixture[str], installed_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(MANIFEST.root.parent)  # a source checkout, package installed non-editable
    code, out, _ = run(capsys, "evaluate", "bp-160-100", "--now", DAY)
    assert code == 0
    assert "result: MATCHES the manifest" in out


def test_fixtures_dir_option_and_environment(
    capsys: pytest.CaptureFixture[str], installed_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "fixtures", "list", "--fixtures-dir", str(MANIFEST.root))
    assert code == 0 and out.startswith(f"{len(MANIFEST.entries)} fixtures in {MANIFEST.root}")
    monkeypatch.setenv("KETAMINE_CDS_FIXTURES_DIR", str(MANIFEST.root))
    code, out, _ = run(capsys, "evaluate", "ptsd-only", "--now", DAY)
    assert code == 0 and "result: MATCHES the manifest" in out


def test_unknown_fixture_name_suggests_close_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "evaluate", "bp-160-10", "--now", DAY)
    assert code == 2
    assert "no fixture named 'bp-160-10' (did you mean bp-160-100" in err
    assert "fixtures list" in err and "eligible-mdd-iv" not in err  # a hint, not all 77 names


# --- patient-view ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eligible-mdd-iv", "course-six-infusions-responder", "crps-pain"])
def test_evaluate_a_fixture_as_the_chart_opened(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = run(capsys, "evaluate", name, "--hook", "patient-view", "--format", "json", "--now", DAY)
    assert code == 0
    assert card_mismatch(card_pairs(json.loads(out)), expected(name, "patient-view")) is None
    code, out, _ = run(capsys, "evaluate", name, "--hook", "patient-view", "--now", DAY)
    assert out.startswith(f"{name} · patient-view · evaluated {DAY}") and "result: MATCHES the manifest" in out


def test_evaluate_patient_view_of_a_bundle_and_of_a_fixture_without_stated_cards(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = MANIFEST.root / MANIFEST.get("crps-pain").bundle
    code, out, _ = run(capsys, "evaluate", str(bundle), "--hook", "patient-view", "--now", DAY)
    assert code == 0 and "(no cards: nothing to say about this patient)" in out
    code, out, _ = run(capsys, "evaluate", "long-history-eight-years", "--hook", "patient-view", "--now", DAY)
    assert code == 0 and "manifest states no patient-view cards for long-history-eight-years" in out


def test_evaluate_the_committed_patient_view_request(capsys: pytest.CaptureFixture[str]) -> None:
    request = MANIFEST.root / "requests" / "pv-ect-366-days" / "patient-view.json"
    code, out, _ = run(capsys, "evaluate", str(request), "--format", "json", "--now", DAY)
    assert code == 0 and card_pairs(json.loads(out)) == [("trd-candidate", "info")]
