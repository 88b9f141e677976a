"""deploy/kubernetes/replay: validates offline against the Kubernetes schemas, and its commands are real ones."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cds_service.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
MANIFESTS = sorted((K8S / "replay").glob("*.yaml"))
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())  # as tests/deploy: oldest promised, newest known


def job(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((K8S / "replay" / name).read_text())
    return doc


def container(doc: dict[str, Any]) -> dict[str, Any]:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return dict(c)


def parsed(c: dict[str, Any], index: str = "0") -> Any:
    """The container's command line as ketamine-cds parses it, with Kubernetes' $(VAR) filled in."""
    assert c["command"] == ["ketamine-cds", "replay"]
    args = [re.sub(r"\$\(SHARD\)", index, a) for a in c["args"]]
    return build_parser().parse_args(["replay", *args])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path, version: str) -> None:
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_can_fail() -> None:
    broken = job("replay-job.yaml")
    broken["spec"]["completionMode"] = "Sharded"
    broken["spec"]["template"]["spec"]["containers"][0]["argz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_the_indexed_job_runs_shard_i_of_n_in_pod_i() -> None:
    doc = job("replay-job.yaml")
    spec = doc["spec"]
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    c = container(doc)
    env = {e["name"]: e for e in c["env"]}
    assert env["SHARD"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    for index in ("0", str(spec["completions"] - 1)):
        args = parsed(c, index)
        assert args.shard == f"{index}/{spec['completions']}"  # N in the argument is the Job's completions
        assert args.output == f"/results/shard-{index}.json"  # one report per shard, none overwritten
    args = parsed(c)
    assert args.format == "json" and args.resume and args.actual_orders
    assert args.handler.__module__ == "cds_service.replay.cli"


def test_volumes_export_read_only_work_local_results_shared() -> None:
    doc = job("replay-job.yaml")
    c = container(doc)
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
    args = parsed(c)
    assert args.sources == [mounts["export"]["mountPath"]] and mounts["export"]["readOnly"] is True
    assert volumes["export"]["persistentVolumeClaim"]["readOnly"] is True
    assert args.work_dir.startswith(mounts["work"]["mountPath"] + "/") and "emptyDir" in volumes["work"]
    assert args.output.startswith(mounts["results"]["mountPath"] + "/")
    assert "persistentVolumeClaim" in volumes["results"]
    merge = job("replay-merge-job.yaml")
    merge_volumes = {v["name"]: v for v in merge["spec"]["template"]["spec"]["volumes"]}
    assert merge_volumes["results"]["persistentVolumeClaim"]["claimName"] == (
        volumes["results"]["persistentVolumeClaim"]["claimName"]
    )
    merge_args = parsed(container(merge))
    assert merge_args.sources == ["merge", "/results"] and merge_args.format == "html"


def test_the_site_rules_are_those_the_deployment_reads() -> None:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    served = container(deployment)
    served_env = {e["name"]: e.get("value") for e in served["env"]}
    c = container(job("replay-job.yaml"))
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KETAMINE_CDS_RULES_CONFIG"] == served_env["KETAMINE_CDS_RULES_CONFIG"]
    volumes = {v["name"]: v for v in job("replay-job.yaml")["spec"]["template"]["spec"]["volumes"]}
    served_volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["rules-config"] == served_volumes["rules-config"]
    assert c["image"] == served["image"]


@pytest.mark.parametrize("name", ["replay-job.yaml", "replay-merge-job.yaml"])
def test_pods_run_locked_down_and_outside_the_service(name: str) -> None:
    doc = job(name)
    pod = doc["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] != "ketamine-cds"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    c = container(doc)
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    assert "DATABASE_URL" not in {e["name"] for e in c.get("env", ())}  # replay needs no database


def test_not_applied_with_the_service() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert not [r for r in kustomization["resources"] if "replay" in r]
