"""deploy/kubernetes validates offline against the Kubernetes JSON schemas and hangs together."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import REPO

from cds_service.config import Settings

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
            "ServiceAccount"} <= set(kinds)
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
