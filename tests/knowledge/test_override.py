"""Deployment override file (KETAMINE_CDS_RULES_CONFIG): good files apply, bad files fail with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.knowledge.loader import KnowledgeError, load_knowledge
from cds_service.record.model import Code

ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def _write(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_good_yaml_file_changes_thresholds_codes_and_version(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
thresholds:
  bp.critical_systolic: 170
  bp.lookback_days: 14
  trd.require_distinct_classes: false
local_score_codes:
  MADRS: [{system: "urn:oid:1.2.3", code: "MADRS-T"}]
  ham-d: [{system: "urn:oid:1.2.3", code: "HAMD17"}]
valuesets:
  depression:
    codes: [{system: "urn:oid:1.2.3.9", code: "DEP01"}]
    prefixes: [{system: "http://hl7.org/fhir/sid/icd-10-cm", prefix: "F34.1"}]
    text_patterns: ["Dysthymia"]
""",
    )
    kb = load_knowledge(path)
    assert kb.number("bp.critical_systolic") == 170
    assert kb.number("bp.lookback_days") == 14
    assert kb.flag("trd.require_distinct_classes") is False
    assert kb.number("bp.critical_diastolic") == 100  # untouched defaults stay
    assert kb.local_score_codes["MADRS"] == {("urn:oid:1.2.3", "MADRS-T")}
    assert kb.local_score_codes["HAM-D"] == {("urn:oid:1.2.3", "HAMD17")}
    depression = kb.valueset("depression")
    assert depression.matches_code([Code("urn:oid:1.2.3.9", "DEP01")])
    assert depression.matches_code([Code(ICD, "F34.1")])
    assert depression.matches_code([Code(ICD, "F33.1")])  # bundled codes kept
    assert depression.matches_text(["dysthymia"])
    assert kb.version.startswith("2026.11.1+site.")
    assert kb.version != load_knowledge().version


def test_good_json_file(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps({"thresholds": {"weight.lookback_days": 60}}), "rules.json")
    assert load_knowledge(path).number("weight.lookback_days") == 60


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    assert load_knowledge(_write(tmp_path, "")).thresholds == load_knowledge().thresholds


def test_override_changes_topic_logic_text(tmp_path: Path) -> None:
    kb = load_knowledge(_write(tmp_path, "thresholds:\n  bp.critical_systolic: 171\n"))
    assert "171" in kb.topics["hypertension-uncontrolled"].logic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thresholds:\n  bp.critcal_systolic: 150\n", r"rules.yaml: thresholds: unknown key 'bp.critcal_systolic'"),
        ("thresholds:\n  bp.critical_systolic: high\n", r"rules.yaml: thresholds.bp.critical_systolic: 'high' is not"),
        ("thresholds:\n  bp.critical_systolic: true\n", r"critical_systolic: True is not of type 'number'"),
        ("thresholds:\n  trd.require_distinct_classes: 1\n", r"thresholds.trd.require_distinct_classes: 1 is not of"),
        ("thresholds:\n  bp.lookback_days: -3\n", r"thresholds.bp.lookback_days: -3 is less than the minimum"),
        ("threshold:\n  bp.lookback_days: 3\n", r"\(top level\): unknown key 'threshold'"),
        ("valuesets:\n  depresion:\n    codes: []\n", r"valuesets: unknown key 'depresion'"),
        ("valuesets:\n  depression:\n    codes: [{code: X}]\n", r"depression.codes.0: 'system' is a required"),
        ("local_score_codes:\n  QIDS: []\n", r"local_score_codes: unknown key 'QIDS'"),
        ("- just\n- a list\n", r"rules.yaml: the top level must be a mapping"),
        ("thresholds: [oops\n", r"rules.yaml: not valid YAML \(line"),
        ("thresholds:\n  bp.critical_systolic: 130\n", r"bp.critical_systolic: 130 must be above bp.elevated_systolic"),
    ],
)
def test_bad_file_raises_naming_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(KnowledgeError, match=expected):
        load_knowledge(_write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match=r"nowhere.yaml: rules configuration file not found"):
        load_knowledge(str(tmp_path / "nowhere.yaml"))


def test_bad_json_file(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match=r"rules.json: not valid JSON \(line 1"):
        load_knowledge(_write(tmp_path, "{thresholds: 1}", "rules.json"))


def test_serve_refuses_to_start_with_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start-up validation: `ketamine-cds serve` exits 2 naming the file and the problem, no server runs."""
    from cds_service.cli import main
    from cds_service.knowledge import loader
    from cds_service.web import serve

    def started(self: object) -> None:
        raise AssertionError("the server started with a bad rules configuration file")

    monkeypatch.setattr(serve.GunicornApplication, "run", started)
    monkeypatch.setenv("KETAMINE_CDS_AUTH", "off")
    monkeypatch.setenv(loader.ENV_VAR, _write(tmp_path, "thresholds:\n  bp.critical_systolic: high\n"))
    assert main(["serve", "--host", "127.0.0.1", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "rules.yaml" in err and "bp.critical_systolic: 'high' is not of type 'number'" in err
