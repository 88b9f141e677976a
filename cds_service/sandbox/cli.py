"""Subcommands: evaluate, fixtures (being implemented)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this feature's subcommands to the ketamine-cds parser."""
    del sub, argparse
