"""requirements/runtime-constraints.txt pins the image's runtime dependencies: all of them, exactly, within
the ranges pyproject.toml allows, and (checked against the installed metadata) everything they pull in."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Iterable

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from tests.deploy.deploy_support import REPO, dockerignore_excludes, instructions

CONSTRAINTS = REPO / "requirements" / "runtime-constraints.txt"
CONSTRAINTS_IN_REPO = "requirements/runtime-constraints.txt"


def pins(lines: Iterable[str]) -> dict[NormalizedName, Version]:
    """``{name: version}`` of a constraints file; every entry must be an exact ``name==version`` pin."""
    out: dict[NormalizedName, Version] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, f"not exact: {line}"
        assert not req.extras and req.marker is None and req.url is None, f"a bare pin is expected: {line}"
        name = canonicalize_name(req.name)
        assert name not in out, f"pinned twice: {req.name}"
        out[name] = Version(specs[0].version)
    return out


def locked() -> dict[NormalizedName, Version]:
    return pins(CONSTRAINTS.read_text().splitlines())


def runtime_requirements() -> list[Requirement]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [Requirement(d) for d in deps]


def image_python() -> str:
    """The Python minor of the image (``3.11``), for evaluating dependency markers as the build does."""
    args = dict(rest.split("=", 1) for op, rest in instructions() if op == "ARG" and "=" in rest)
    found = re.match(r"python:(3\.\d+)", args["PYTHON_IMAGE"])
    assert found, args["PYTHON_IMAGE"]
    return found.group(1)


def marker_environment(extra: str) -> dict[str, str]:
    """The image's platform (CPython on Linux), whatever machine runs the tests."""
    python = image_python()
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": extra}


def applies(req: Requirement, extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate(marker_environment(extra)) for extra in ("", *extras))


def test_the_file_holds_only_exact_pins_and_documents_its_refresh() -> None:
    text = CONSTRAINTS.read_text()
    assert len(locked()) >= len(runtime_requirements())
    header = text.split("\n\n", 1)[0]
    assert "pip freeze" in header and "pip install" in header  # the refresh command


def test_pin_parser_refuses_ranges_and_duplicates() -> None:
    for bad in (["flask>=3.0"], ["flask==3.*"], ["flask==3.1.3", "Flask==3.1.2"], ["psycopg[binary]==3.3.9"]):
        with pytest.raises(AssertionError):
            pins(bad)
    assert pins(["# comment", "", "Flask==3.1.3"]) == {"flask": Version("3.1.3")}


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=str)
def test_every_runtime_dependency_is_pinned_within_its_range(requirement: Requirement) -> None:
    lock = locked()
    name = canonicalize_name(requirement.name)
    assert name in lock, f"{requirement.name} is not pinned in {CONSTRAINTS_IN_REPO}"
    assert requirement.specifier.contains(lock[name], prereleases=True), (
        f"{requirement.name}=={lock[name]} is outside pyproject.toml's range {requirement.specifier}"
    )


def installed_version(name: str) -> Version | None:
    try:
        return Version(importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return None


def test_what_the_dependencies_pull_in_is_pinned_and_consistent() -> None:
    """Walk the dependency tree from pyproject.toml through the pins, reading each pinned release's declared
    requirements from the installed distribution (the test venv). A requirement the image would resolve at
    build time (not pinned), or a pin outside a parent's range, fails; so does a pin nothing needs. Releases
    installed at a version other than the pin cannot be read and are skipped; at least the direct
    dependencies must be checked."""
    lock = locked()
    extras: dict[NormalizedName, set[str]] = {}
    todo = list(runtime_requirements())
    checked: set[NormalizedName] = set()
    problems: list[str] = []
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name not in lock:
            problems.append(f"{req} is not pinned")
            continue
        if not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{name}=={lock[name]} does not satisfy {req}")
        wanted = extras.setdefault(name, set())
        if name in checked and set(req.extras) <= wanted:
            continue
        wanted.update(req.extras)
        if installed_version(name) != lock[name]:
            continue
        checked.add(name)
        for declared in importlib.metadata.requires(name) or []:
            dep = Requirement(declared)
            if applies(dep, wanted):
                todo.append(dep)
    assert problems == []
    assert {canonicalize_name(r.name) for r in runtime_requirements()} <= checked, (
        "the test venv does not have the pinned versions: reinstall with -c " + CONSTRAINTS_IN_REPO
    )
    if set(extras) == checked:  # the whole tree was read: a pin nothing needs is a leftover
        unused = set(lock) - checked
        assert unused == set(), f"pinned but not needed by any runtime dependency: {sorted(unused)}"


def test_the_image_build_installs_with_the_constraints() -> None:
    ins = instructions()
    copies = [rest for op, rest in ins if op == "COPY" and CONSTRAINTS_IN_REPO in rest]
    assert copies, "the build stage must COPY the constraints file"
    installs = [rest for op, rest in ins if op == "RUN" and "pip install" in rest]
    assert installs and all(f"-c {CONSTRAINTS_IN_REPO}" in rest for rest in installs), installs
    assert not dockerignore_excludes(CONSTRAINTS_IN_REPO)
