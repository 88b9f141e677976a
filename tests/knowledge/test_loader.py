"""The bundled knowledge base loads, every data file is well-formed, and codes follow terminology.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fhir.resources.R4B.valueset import ValueSet as FhirValueSet

from cds_service.knowledge import loader
from cds_service.knowledge.loader import DATA_DIR, KnowledgeError, load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.record.model import Code
from cds_service.terminology.ndc import normalize_ndc

SHARED = Path("/work/shared")
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
NDC = "http://hl7.org/fhir/sid/ndc"

BRIEF_KEYS = {
    "depression", "bipolar", "bipolar-depression", "ptsd", "chronic-pain-crps", "chronic-pain-sci",
    "chronic-pain-other", "suicidal-ideation", "psychosis", "psychotic-features", "ketamine-misuse",
    "substance-use", "cardiovascular", "hypertensive-crisis", "hepatic", "intracranial-pressure",
    "intraocular-pressure", "pregnancy",
}  # fmt: skip
ROLES = {
    "antidepressant", "mood-stabilizer-standard", "mood-stabilizer-other", "bipolar-depression-agent", "ketamine",
    "esketamine", "maoi", "psychostimulant", "benzodiazepine", "opioid",
}  # fmt: skip


def test_every_brief_valueset_key_is_present(kb: Knowledge) -> None:
    assert set(kb.valuesets) >= BRIEF_KEYS


@pytest.mark.parametrize("path", sorted((DATA_DIR / "valuesets").glob("*.json")), ids=lambda p: p.stem)
def test_valueset_files_are_valid_fhir_with_provenance(path: Path) -> None:
    doc = json.loads(path.read_text())
    vs = FhirValueSet.model_validate(doc)
    assert vs.url == f"urn:ketamine-cds:valueset:{path.stem}"
    assert "terminology.md" in (vs.description or "")
    urls = {e.url for e in vs.extension or ()}
    assert "urn:ketamine-cds:source-section" in urls


def _terminology_codes() -> set[str]:
    """Every code-looking token in terminology.md table rows that are not marked UNVERIFIED."""
    text = (SHARED / "terminology.md").read_text()
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("|") and "UNVERIFIED" not in line:
            found.update(re.findall(r"[A-Z0-9][A-Z0-9.\-]*", line))
    # the I70.22 row names its bypass-graft analogues in short form ("I70.32-/.42-/.52-/.62-/.72-")
    found.update({"I70.42", "I70.52", "I70.62", "I70.72"})
    return found


# Codes verified outside terminology.md, each with its source: ICD-10-PCS table GZB (electroconvulsive therapy),
# CMS ICD-10-PCS, checked by the lead on the coordination board 2026-12-07 (valuesets/ect.json says so).
VERIFIED_ELSEWHERE = {"GZB0ZZZ", "GZB1ZZZ", "GZB2ZZZ", "GZB3ZZZ", "GZB4ZZZ"}


def _catalogue_codes() -> set[str]:
    """Every ICD-10-CM code or category clinical-rules.md (v2) names itself ("F31.81", "K70.4x", "G91")."""
    text = (SHARED / "clinical-rules.md").read_text()
    return {m.rstrip("x-") for m in re.findall(r"\b[A-Z][0-9][0-9A-Z](?:\.[0-9A-Zx]{1,4})?-?", text)}


@pytest.mark.skipif(not (SHARED / "terminology.md").exists(), reason="shared terminology reference not present")
def test_every_code_comes_from_a_verified_terminology_row_or_the_catalogue() -> None:
    verified = _terminology_codes()
    named = _catalogue_codes()
    for path in sorted((DATA_DIR / "valuesets").glob("*.json")):
        doc = json.loads(path.read_text())
        compose = doc["compose"]
        for inc in (*compose["include"], *compose.get("exclude", ())):
            for concept in inc.get("concept", []):
                assert concept["code"] in verified | named | VERIFIED_ELSEWHERE, f"{path.stem}: {concept['code']}"
            for flt in inc.get("filter", []):
                if flt["op"] == "regex":  # a structural rule: its description cites where it was checked
                    assert "ICD-10-CM" in doc["description"], f"{path.stem}: {flt['value']}"
                    continue
                # a category prefix is a verified code itself, the stem of verified billable codes, or named by
                # the catalogue; otherwise (R18, I85) its description says it was checked against the tabular
                value = flt["value"]
                known = any(v.startswith(value) for v in verified | named)
                assert known or "tabular" in doc["description"], f"{path.stem}: {value}"
    meds = json.loads((DATA_DIR / "medications.json").read_text())
    for ing in meds["ingredients"]:
        if ing["rxcui"]:
            assert ing["rxcui"] in verified, ing["key"]
    for product in meds["products"]:
        assert product["code"] in verified, product["code"]


def test_icd_categories_match_by_prefix_and_exclusions_hold(kb: Knowledge) -> None:
    depression = kb.valueset("depression")
    assert depression.matches_code([Code(ICD, "F33.1")])
    assert depression.matches_code([Code(ICD, "F32.9")])
    assert depression.matches_code([Code(ICD, "F32.A")])  # v2 §1: "depression, type not specified" counts
    assert depression.matches_code([Code(ICD, "F34.1")])  # dysthymia
    assert not depression.matches_code([Code(ICD, "F32.81")])  # PMDD
    assert kb.valueset("bipolar").matches_code([Code(ICD, "F31.76")])  # bipolar in remission is bipolar
    assert kb.valueset("bipolar-depression").matches_code([Code(ICD, "F31.81")])  # bipolar II
    assert not kb.valueset("bipolar-depression").matches_code([Code(ICD, "F31.76")])
    assert not kb.valueset("substance-use").matches_code([Code(ICD, "F17.210")])  # nicotine
    assert kb.valueset("substance-use").excludes_code([Code(ICD, "F10.21")])  # remission, deliberately out
    assert not kb.valueset("ketamine-misuse").matches_code([Code(ICD, "F16.20")])  # hallucinogen, not named
    assert kb.valueset("substance-use").matches_code([Code(ICD, "F16.20")])
    pain = kb.valueset("chronic-pain-other")
    assert pain.matches_code([Code(ICD, "G43.909")])
    assert not pain.matches_code([Code(ICD, "G43.A0")])  # cyclical vomiting
    assert not pain.matches_code([Code(ICD, "G54.7")])  # phantom limb without pain
    assert kb.valueset("psychosis").matches_code([Code(ICD, "F33.3")])
    assert kb.valueset("psychotic-features").matches_code([Code(ICD, "F33.3")])
    assert kb.valueset("pregnancy").matches_code([Code(SCT, "72892002")])


def test_medication_catalog_roles_classes_and_floors(kb: Knowledge) -> None:
    meds = kb.medications
    for ing in meds.ingredients.values():
        assert ing.roles <= ROLES, ing.key
        if "antidepressant" in ing.roles:
            assert ing.drug_class, ing.key
    assert meds.ingredients["sertraline"].min_daily_dose_mg == 50
    assert meds.ingredients["levomilnacipran"].rxcui is None  # UNVERIFIED in terminology.md
    assert meds.ingredients["lithium"].roles == {"mood-stabilizer-standard"}
    assert meds.ingredients["valproate"].roles == {"mood-stabilizer-standard"}
    assert meds.ingredients["lamotrigine"].roles == {"bipolar-depression-agent"}
    # product-level codes map to ingredients with a strength per unit
    assert meds.ingredients_for_codes([Code(RX, "312940")]) == ("sertraline",)
    assert meds.products[(RX, "312940")].strength_mg["sertraline"] == 25
    assert meds.ingredients_for_codes([Code(RX, "403970")]) == ("fluoxetine", "olanzapine")
    assert meds.ingredients_for_codes([Code(RX, "6130")]) == ("ketamine",)
    assert meds.ingredients_for_codes([Code(RX, "2201625")]) == ("esketamine",)


def test_doxepin_low_dose_tablets_never_reach_the_floor(kb: Knowledge) -> None:
    floor = kb.medications.ingredients["doxepin"].min_daily_dose_mg
    assert floor is not None
    for code in ("966787", "966793"):  # doxepin 3 mg and 6 mg tablets
        strength = kb.medications.products[(RX, code)].strength_mg["doxepin"]
        assert strength * 4 < floor  # even four tablets a day stay far below an antidepressant dose


def test_esketamine_and_ketamine_names_stay_apart(kb: Knowledge) -> None:
    meds = kb.medications
    assert meds.ingredients_for_text(["Spravato 28 mg nasal spray"]) == ("esketamine",)
    assert meds.ingredients_for_text(["esketamine 56 mg"]) == ("esketamine",)
    assert meds.ingredients_for_text(["Ketamine HCl 50 mg/mL injection"]) == ("ketamine",)


@pytest.mark.parametrize("code", ["50458-028-02", "50458002802", "50458-0028-02"])
def test_spravato_kit_ndc_in_every_spelling(kb: Knowledge, code: str) -> None:
    assert kb.medications.ingredients_for_codes([Code(NDC, code)]) == ("esketamine",)
    assert kb.medications.products[(NDC, code)].strength_mg["esketamine"] == 56


def test_normalize_ndc() -> None:
    assert normalize_ndc("50458-028-02") == "50458002802"
    assert normalize_ndc("50458002802") == "50458002802"


def test_seeds_reasons_assessments_and_local_codes(kb: Knowledge) -> None:
    assert set(kb.seeds) == {"000", "001", "002", "003", "004"}
    assert all(s.title and s.citation for s in kb.seeds.values())
    assert set(kb.assessment_orders) == set(kb.assessment_labels) == {"phq9", "vital-signs", "body-weight"}
    for template in kb.assessment_orders.values():
        assert template["status"] == "draft" and template["intent"] == "order"
    assert kb.local_score_codes == {"MADRS": frozenset(), "HAM-D": frozenset()}
    assert kb.thresholds["bp.critical_systolic"] == 160  # values only, no metadata
    assert kb.version == "2026.11.1"


def test_topic_placeholders_are_filled_from_thresholds(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "topics" / "zz-test.yaml").write_text(
        "topics:\n  zz-test-topic:\n    title: BP\n    logic: 'No BP within [[bp.lookback_days]] days'\n"
        "    references: [ketalar-pi]\n"
    )
    kb = load_knowledge(data_dir=data)
    assert kb.topics["zz-test-topic"].logic == "No BP within 30 days"
    assert kb.topics["zz-test-topic"].override_reasons[0][0] == "benefit-outweighs-risk"


def test_topic_with_unknown_placeholder_is_a_clear_error(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "topics" / "zz-test.yaml").write_text("topics:\n  x:\n    logic: 'over [[bp.no_such]]'\n")
    with pytest.raises(KnowledgeError, match=r"zz-test.yaml: topics.x: \[\[bp.no_such\]\] is not a threshold"):
        load_knowledge(data_dir=data)


def test_missing_topic_files_are_tolerated(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    for path in (data / "topics").glob("*.yaml"):
        path.unlink()
    assert load_knowledge(data_dir=data).topics == {}


def test_a_topic_defined_in_two_domain_files_is_a_clear_error(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "topics" / "zz-test.yaml").write_text("topics:\n  psychosis:\n    title: again\n")
    with pytest.raises(KnowledgeError, match=r"topics.psychosis: topic defined twice"):
        load_knowledge(data_dir=data)


def test_default_knowledge_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "site.yaml"
    override.write_text("version: site-a\nthresholds:\n  bp.critical_systolic: 150\n")
    monkeypatch.setenv(loader.ENV_VAR, str(override))
    kb = loader.default_knowledge()
    assert kb.thresholds["bp.critical_systolic"] == 150
    assert kb.version == "2026.11.1+site.site-a"
    assert loader.default_knowledge() is kb  # cached
    monkeypatch.delenv(loader.ENV_VAR)
    assert loader.default_knowledge().thresholds["bp.critical_systolic"] == 160


def _copy_data(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def test_every_medication_entry_names_its_source_and_condition_sets_have_name_patterns(kb: Knowledge) -> None:
    meds = json.loads((DATA_DIR / "medications.json").read_text())
    assert all(entry["source"] for entry in meds["ingredients"] + meds["products"])
    for key in BRIEF_KEYS:
        assert kb.valueset(key).text_patterns or kb.valueset(key).text_regexes, key
        assert kb.valueset(key).source.startswith("terminology.md"), key


# --- flags the service settings set (KETAMINE_CDS_PATIENT_VIEW_TRD_CANDIDATE) -----------------------------------


@pytest.mark.parametrize(("raw", "value"), [(None, None), ("", None), ("off", False), ("0", False), ("on", True)])
def test_the_trd_candidate_switch_is_read_from_the_environment(raw: str | None, value: bool | None) -> None:
    from cds_service.config import Settings

    env = {} if raw is None else {"KETAMINE_CDS_PATIENT_VIEW_TRD_CANDIDATE": raw}
    assert Settings.from_env(env).patient_view_trd_candidate is value


def test_a_malformed_switch_stops_the_start() -> None:
    from cds_service.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="KETAMINE_CDS_PATIENT_VIEW_TRD_CANDIDATE"):
        Settings.from_env({"KETAMINE_CDS_PATIENT_VIEW_TRD_CANDIDATE": "maybe"})


def test_the_settings_set_the_flag_and_the_version_says_so(kb: Knowledge) -> None:
    from cds_service.config import Settings
    from cds_service.knowledge.loader import with_settings

    assert with_settings(kb, Settings()) is kb and with_settings(kb, Settings(patient_view_trd_candidate=True)) is kb
    off = with_settings(kb, Settings(patient_view_trd_candidate=False))
    assert off.flag("patient_view.trd_candidate") is False and kb.flag("patient_view.trd_candidate") is True
    assert off.version == f"{kb.version}+env.patient-view.trd-candidate-off"
    assert off.topics is kb.topics and off.valuesets is kb.valuesets
