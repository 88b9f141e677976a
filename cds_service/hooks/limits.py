"""Nesting limit of request JSON (``KETAMINE_CDS_MAX_JSON_DEPTH``), checked on the parsed body.

The envelope (hook, context, extension...) is checked on every call. The prefetch is checked only when
the service is about to read it (a ketamine order is present): a call for another drug never walks it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from cds_service.hooks.errors import Issue


def nesting_exceeds(value: Any, max_depth: int, *, skip_keys: Collection[str] = (), start: int = 1) -> bool:
    """True when objects/arrays in ``value`` nest deeper than ``max_depth`` (``value`` itself is at
    depth ``start``). Top-level keys in ``skip_keys`` are not walked. Iterative: no recursion limit."""
    if not isinstance(value, dict | list):
        return False
    if isinstance(value, dict) and skip_keys:
        value = {k: v for k, v in value.items() if k not in skip_keys}
    stack: list[tuple[Any, int]] = [(value, start)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def too_deep(max_depth: int, where: str | None = None) -> Issue:
    return Issue(f"JSON nesting depth exceeds the limit of {max_depth} levels", code="too-long", expression=where)
