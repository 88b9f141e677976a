"""The README's configuration reference documents every environment variable the service reads."""

from __future__ import annotations

import re

from tests.deploy.deploy_support import REPO


def env_names_in_code() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "cds_service").rglob("*.py"):
        text = path.read_text()
        names.update(re.findall(r'"((?:KETAMINE_CDS_[A-Z_]+)|DATABASE_URL|PROMETHEUS_MULTIPROC_DIR)"', text))
    return names


def test_every_environment_variable_is_in_the_configuration_reference() -> None:
    doc = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", doc, flags=re.MULTILINE))
    code = env_names_in_code()
    assert {"KETAMINE_CDS_AUTH", "KETAMINE_CDS_WORKERS", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"} <= code
    assert code - documented == set(), "undocumented variables"
    assert documented - code == set(), "documented variables the code does not read"
