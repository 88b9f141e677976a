"""The ketamine-cds entry point itself."""

from __future__ import annotations

import subprocess
import sys


def test_closed_pipe_is_not_an_error() -> None:
    """`ketamine-cds fixtures request <big> | head -1` ends quietly: no traceback, exit 0.

    The request is far larger than a pipe buffer, so the writer really meets the closed pipe.
    """
    proc = subprocess.run(
        f"{sys.executable} -m cds_service fixtures request long-history-eight-years | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip(), "head saw the first line"
    assert "Traceback" not in proc.stderr
    assert "BrokenPipeError" not in proc.stderr


def test_help_lists_every_subcommand() -> None:
    proc = subprocess.run([sys.executable, "-m", "cds_service", "--help"], capture_output=True, text=True, check=True)
    for command in ("serve", "evaluate", "fixtures", "report", "purge"):
        assert command in proc.stdout
