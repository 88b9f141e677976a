"""The stage-timing script of the benchmark (benchmarks/stages.py) runs and leaves the service unpatched."""

from __future__ import annotations

import logging

import pytest

from benchmarks import stages
from cds_service.record import validation


def test_stage_script_prints_every_stage_and_the_validation_table(capsys: pytest.CaptureFixture[str]) -> None:
    original = validation.Validator.validate
    assert stages.main(["typical", "--calls", "2"]) == 0
    out = capsys.readouterr().out
    for line in ("whole call, floor", "whole call, service ", "validation a no-op", "record build",
                 "prefetch nesting check", "rules (engine.evaluate)"):  # fmt: skip
        assert line in out
    table = out.split("fhir.resources validation per record build")[1].splitlines()[1:]
    counts = {row.split()[0]: int(row.split()[1]) for row in table if row.strip()}
    assert counts["MedicationRequest"] > 0 and counts["Observation"] > 0 and counts["Patient"] == 1
    assert validation.Validator.validate is original  # the no-op and the timer are undone
    assert logging.getLogger("ketamine_cds.test").isEnabledFor(logging.CRITICAL)
    assert logging.root.manager.disable == logging.NOTSET  # logging is on again for whatever runs next


def test_stage_script_refuses_an_unknown_or_stub_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert stages.main(["fhir-fallback"]) == 2
    assert "choose one of" in capsys.readouterr().err
