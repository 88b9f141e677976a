"""The repository, the built package and the image carry the Apache License 2.0 that pyproject.toml declares."""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
import subprocess
import sys
import tomllib
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.version import Version

from tests.deploy.deploy_support import REPO, dockerignore_excludes, instructions

LICENSE = REPO / "LICENSE"
# https://www.apache.org/licenses/LICENSE-2.0.txt as the ASF distributes it (11,358 bytes), unmodified.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
# setuptools' default `license-files` when pyproject.toml names none (PEP 639, setuptools >= 77)
DEFAULT_LICENSE_FILES = ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*")


def pyproject() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


def test_license_is_the_unmodified_apache_2_text() -> None:
    text = LICENSE.read_text(encoding="ascii")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    for part in ("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "9. Accepting Warranty",
                 "END OF TERMS AND CONDITIONS", "APPENDIX: How to apply the Apache License to your work.",
                 "Copyright [yyyy] [name of copyright owner]"):
        assert part in text, part  # complete, appendix included, placeholders not filled in
    assert hashlib.sha256(LICENSE.read_bytes()).hexdigest() == APACHE_2_SHA256


def test_pyproject_declares_apache_2_and_its_license_files_name_the_license() -> None:
    project = pyproject()
    assert project["license"] == "Apache-2.0"
    explicit = project.get("license-files")
    patterns = DEFAULT_LICENSE_FILES if explicit is None else explicit
    assert isinstance(patterns, list | tuple)
    assert any(fnmatch.fnmatchcase("LICENSE", p) for p in patterns), patterns
    for pattern in explicit or ():  # an explicit pattern that matches nothing fails the build (setuptools)
        assert list(REPO.glob(pattern)), f"license-files pattern {pattern!r} matches no file"


def test_built_package_metadata_carries_the_license(tmp_path: Path) -> None:
    """Build the wheel metadata the way pip does (setuptools' PEP 517 hook), offline, from a copy."""
    import setuptools

    if Version(setuptools.__version__) < Version("77"):
        pytest.fail(f"setuptools {setuptools.__version__} cannot read an SPDX license: pip install 'setuptools>=77'")
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "cds_service").mkdir(parents=True)
    out.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    (src / "cds_service" / "__init__.py").write_text("")
    hook = "import sys, setuptools.build_meta as m; print(m.prepare_metadata_for_build_wheel(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", hook, str(out)], cwd=src, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dist_info = out / done.stdout.strip().splitlines()[-1]
    metadata = Parser().parsestr((dist_info / "METADATA").read_text())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert (dist_info / "licenses" / "LICENSE").read_bytes() == LICENSE.read_bytes()


def test_image_build_copies_the_license_and_labels_it() -> None:
    ins = instructions()
    build_stage = ins[: max(i for i, (op, _) in enumerate(ins) if op == "FROM")]
    copied = [src for op, rest in build_stage if op == "COPY" and "--from" not in rest for src in rest.split()[:-1]]
    assert "LICENSE" in copied  # the wheel built in the image carries it (dist-info/licenses/LICENSE)
    assert not dockerignore_excludes("LICENSE")
    labels = " ".join(rest for op, rest in ins if op == "LABEL")
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
