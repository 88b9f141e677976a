"""Can this process write where the configuration says it will? Asked at start, so that an operator reads
why in the first log lines (a read-only root filesystem, a directory owned by another UID) instead of
meeting an empty ``/metrics`` or a service that never becomes ready."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def directory_write_problem(directory: Path) -> str | None:
    """None when this process can create files in ``directory`` (made first if missing), else why not.

    The answer comes from creating (and removing) a file there, not from permission bits: a read-only
    mount refuses even root, and an arbitrary UID (OpenShift) may be neither the owner nor in the group.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ketamine-cds-write-check-"):
            pass
    except OSError as exc:
        return f"{directory} is not writable by uid {os.getuid()} gid {os.getgid()}: {exc.strerror or exc}"
    return None
