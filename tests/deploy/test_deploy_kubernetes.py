"""deploy/kubernetes validates offline against the Kubernetes JSON schemas and hangs together."""

from __future__ import annotations

import copy
import os
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cds_service.config import Settings
from tests.deploy.deploy_support import REPO

K8S = REPO / "deploy" / "kubernetes"
# The oldest supported Kubernetes minor we promise, and the newest the bundled schemas know.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
# read by `ketamine-cds serve` (cds_service/web/serve.py) and prometheus_client, not by Settings
GUNICORN_ENV = {"KETAMINE_CDS_WORKERS", "KETAMINE_CDS_THREADS", "KETAMINE_CDS_TIMEOUT", "PROMETHEUS_MULTIPROC_DIR"}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind() -> dict[str, dict[str, Any]]:
    out = {}
    for path in MANIFESTS:
        for d in docs(path):
            out[d["kind"]] = d
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path, version: str) -> None:
    for resource in docs(path):
        kubernetes_validate.validate(resource, version, strict=True)


def test_validation_rejects_a_broken_manifest() -> None:
    deployment = copy.deepcopy(by_kind()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_every_kind_is_present_and_kustomization_lists_every_file() -> None:
    kinds = by_kind()
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
            "ServiceAccount", "CronJob", "Ingress", "NetworkPolicy"} <= set(kinds)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


def container() -> dict[str, Any]:
    c: dict[str, Any] = by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    return c


def test_deployment_probes_resources_security_and_rollout() -> None:
    d = by_kind()["Deployment"]
    c = container()
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    pod = d["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container()["env"]}


def test_secrets_are_referenced_never_inlined() -> None:
    e = env()
    assert "value" not in e["DATABASE_URL"]
    assert e["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "ketamine-cds-database", "key": "url"}
    volumes = {v["name"]: v for v in by_kind()["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    secret_volume = volumes["trusted-clients"]["secret"]
    assert secret_volume["secretName"] == "ketamine-cds-trusted-clients"
    mounted = f"{mounts['trusted-clients']['mountPath']}/{secret_volume['items'][0]['path']}"
    assert e["KETAMINE_CDS_TRUSTED_CLIENTS"]["value"] == mounted
    assert "Secret" not in by_kind()  # no secret material in the repository


def settings_env_names() -> set[str]:
    """Every environment variable name cds_service/config.py reads."""
    source = (REPO / "cds_service" / "config.py").read_text()
    return set(re.findall(r'"((?:KETAMINE_CDS_|DATABASE_URL)[A-Z_]*)"', source))


def test_auth_on_and_every_env_var_is_a_known_setting() -> None:
    """A misspelt variable would be ignored silently: every name must be one the service reads."""
    e = env()
    assert e["KETAMINE_CDS_AUTH"]["value"] == "on"
    assert set(e) - GUNICORN_ENV - settings_env_names() == set()


def test_env_settings_parse() -> None:
    """The configured values are accepted by Settings (the service would refuse to start otherwise)."""
    values = {name: spec["value"] for name, spec in env().items() if "value" in spec}
    settings = Settings.from_env({**values, "DATABASE_URL": "postgresql+psycopg://u:p@db/x"})
    assert settings.auth_enabled is True
    assert settings.rules_config_file == values["KETAMINE_CDS_RULES_CONFIG"]


def test_rules_configmap_is_mounted_where_the_env_points_and_loads(tmp_path: Path) -> None:
    cm = by_kind()["ConfigMap"]
    volumes = {v["name"]: v for v in by_kind()["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    assert volumes["rules-config"]["configMap"]["name"] == cm["metadata"]["name"]
    (filename, content), = cm["data"].items()
    assert env()["KETAMINE_CDS_RULES_CONFIG"]["value"] == f"{mounts['rules-config']['mountPath']}/{filename}"
    override = tmp_path / filename
    override.write_text(content)
    from cds_service.knowledge.loader import load_knowledge

    kb = load_knowledge(str(override))
    for name, value in yaml.safe_load(content)["thresholds"].items():
        assert kb.thresholds[name] == value


def test_service_hpa_pdb_point_at_the_deployment() -> None:
    k = by_kind()
    d = k["Deployment"]
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    assert k["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert k["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert d["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container()["ports"]}
    assert k["Service"]["spec"]["ports"][0]["targetPort"] in port_names
    target = k["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", d["metadata"]["name"])
    assert k["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert d["spec"]["template"]["spec"]["serviceAccountName"] == k["ServiceAccount"]["metadata"]["name"]


def test_writable_paths_are_volumes_under_a_read_only_root() -> None:
    """gunicorn heartbeats and the Prometheus multi-process files need a writable directory."""
    mounts = [m["mountPath"] for m in container()["volumeMounts"] if not m.get("readOnly")]
    mp_dir = env()["PROMETHEUS_MULTIPROC_DIR"]["value"]
    assert any(mp_dir == m or mp_dir.startswith(m.rstrip("/") + "/") for m in mounts)
    assert os.path.isabs(mp_dir)


# --- the retention CronJob (ketamine-cds purge) ---------------------------------------------------------

def cronjob() -> dict[str, Any]:
    cj: dict[str, Any] = by_kind()["CronJob"]
    return cj


def purge_pod() -> dict[str, Any]:
    pod: dict[str, Any] = cronjob()["spec"]["jobTemplate"]["spec"]["template"]
    return pod


def purge_container() -> dict[str, Any]:
    (c,) = purge_pod()["spec"]["containers"]
    out: dict[str, Any] = c
    return out


def purge_env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in purge_container()["env"]}


def test_validation_rejects_a_broken_cronjob() -> None:
    """Strict validation covers the CronJob's own fields, not only the pod inside it."""
    broken = copy.deepcopy(cronjob())
    broken["spec"]["concurrencyPolicyy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)
    broken = copy.deepcopy(cronjob())
    broken["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_purge_runs_once_at_a_time_with_bounded_retries_and_history() -> None:
    spec = cronjob()["spec"]
    assert re.fullmatch(r"(\S+\s+){4}\S+", spec["schedule"]), spec["schedule"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert 1 <= job["backoffLimit"] <= 6
    assert job["activeDeadlineSeconds"] > 0
    assert purge_pod()["spec"]["restartPolicy"] in ("Never", "OnFailure")


def test_purge_uses_the_deployment_image_and_database_secret() -> None:
    c, d = purge_container(), container()
    assert c["image"] == d["image"]
    assert c["imagePullPolicy"] == d["imagePullPolicy"]
    assert purge_env()["DATABASE_URL"] == env()["DATABASE_URL"]  # the same Secret and key, never a value
    assert "value" not in purge_env()["DATABASE_URL"]


def test_purge_env_names_are_known_settings_and_parse() -> None:
    e = purge_env()
    assert set(e) - settings_env_names() == set()
    values = {name: spec["value"] for name, spec in e.items() if "value" in spec}
    settings = Settings.from_env({**values, "DATABASE_URL": "postgresql://u:p@db/x"})
    assert settings.feedback_retention_days == int(values["KETAMINE_CDS_FEEDBACK_RETENTION_DAYS"])


def test_purge_pod_has_the_deployment_security_context_and_resources() -> None:
    pod, deployment_pod = purge_pod()["spec"], by_kind()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == deployment_pod["securityContext"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert purge_container()["securityContext"] == container()["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == by_kind()["ServiceAccount"]["metadata"]["name"]
    resources = purge_container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind])
    for name in ("cpu", "memory"):
        assert quantity(resources["requests"][name]) <= quantity(resources["limits"][name])


def quantity(text: str) -> float:
    """A Kubernetes CPU or memory quantity as a number (the suffixes the manifests use)."""
    factors = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in factors.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_purge_pods_are_never_selected_by_the_service_pdb_or_deployment() -> None:
    """A running purge pod must not receive EHR traffic, count for the PDB, or be adopted by the Deployment."""
    labels = purge_pod()["metadata"]["labels"]
    k = by_kind()
    for selector in (k["Service"]["spec"]["selector"], k["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
                     k["Deployment"]["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= labels.items(), selector


def test_purge_has_a_writable_tmp_under_a_read_only_root() -> None:
    assert purge_container()["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in purge_pod()["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in purge_container()["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_the_cronjob_command_purges_old_rows_with_the_manifest_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run the container's command line as written, with its env (the Secret replaced by a SQLite file)."""
    from cds_service.cli import main
    from cds_service.feedback.store import CardShown, FeedbackStore

    program, *args = purge_container()["command"] + purge_container().get("args", [])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[program] == "cds_service.cli:main"
    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    retention = int(purge_env()["KETAMINE_CDS_FEEDBACK_RETENTION_DAYS"]["value"])
    now = datetime.now(UTC)
    store = FeedbackStore.open(url)
    try:
        store.record_cards([
            CardShown(card_uuid=uuid, service_id="ketamine-order-sign", hook="order-sign", hook_instance="hi-1",
                      topic="hypertension-uncontrolled", indicator="critical", shown_at=now - timedelta(days=age))
            for uuid, age in (("past-retention", retention + 1), ("within-retention", retention - 1))
        ])
        for name, spec in purge_env().items():
            monkeypatch.setenv(name, spec.get("value", url))
        assert main(args) == 0
        assert "purged 1 cards shown" in capsys.readouterr().out
        assert store.shown_counts(None) == [("hypertension-uncontrolled", "critical", 1)]
    finally:
        store.close()


# --- what operators tripped over (issue 15) ----------------------------------------------------------

def test_the_hpa_alone_owns_the_replica_count() -> None:
    """`replicas` in the Deployment would reset a scaled-out Deployment on every `kubectl apply`."""
    k = by_kind()
    assert "replicas" not in k["Deployment"]["spec"]
    assert k["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == k["Deployment"]["metadata"]["name"]


def test_ingress_publishes_only_the_cds_endpoints_and_the_rules_page() -> None:
    k = by_kind()
    (rule,) = k["Ingress"]["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/cds-services", "Prefix"), ("/docs/rules", "Exact")}
    service_ports = {p["name"] for p in k["Service"]["spec"]["ports"]}
    for p in rule["http"]["paths"]:
        assert p["backend"]["service"]["name"] == k["Service"]["metadata"]["name"]
        assert p["backend"]["service"]["port"]["name"] in service_ports
    assert rule["host"] in k["Ingress"]["spec"]["tls"][0]["hosts"]
    public = env()["KETAMINE_CDS_PUBLIC_BASE_URL"]["value"]
    assert public == f"https://{rule['host']}"  # the JWT audience is the URL the EHR calls


def test_networkpolicy_admits_only_the_http_port_and_never_the_metadata_address() -> None:
    k = by_kind()
    policy = k["NetworkPolicy"]["spec"]
    pod_labels = k["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    container_ports = {p["name"] for p in container()["ports"]}
    assert all(port["port"] in container_ports for rule in policy["ingress"] for port in rule["ports"])
    blocks = [peer["ipBlock"] for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert blocks and all("169.254.169.254/32" in block.get("except", []) for block in blocks)
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 5432, 443}
