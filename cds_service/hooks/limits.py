"""Nesting limit of request JSON (``KETAMINE_CDS_MAX_JSON_DEPTH``).

The envelope (hook, context, extension...) is checked on every call, on the parsed body without its
prefetch (:func:`nesting_exceeds`). The prefetch is checked only when the service is about to read it (a
ketamine order is present), on the raw request bytes (:func:`raw_nesting_exceeds`, C-speed byte
operations instead of a Python walk over thousands of FHIR resources): a call for another drug never
pays for it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from cds_service.hooks.errors import Issue

# Escapes are the only backslashes of valid JSON (none outside strings), and only two of them hold a byte
# kept below: \\ and \". See raw_nesting_exceeds.
_BACKSLASH_PAIR = b"\\\\"
_ESCAPED_QUOTE = b'\\"'
# bytes.translate: keep only brackets and quotes
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'{}[]"')
# A string literal once escapes are gone and only brackets and quotes are left
_STRING = re.compile(rb'"[^"]*"')
# "{" -> "[" and "}" -> "]": only the depth matters, and valid JSON pairs the brackets properly
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


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


def raw_nesting_exceeds(raw: bytes, max_depth: int) -> bool:
    r"""True when the objects/arrays of the JSON text ``raw`` (already known to parse) nest deeper than
    ``max_depth``; the top-level value is at depth 1.

    The escaped quotes are dropped, then everything but brackets and quotes; string literals (which may
    hold brackets) are removed, most of them by dropping ``""`` (a string without brackets, now empty) and
    the few that hold brackets by a regular expression. Then every innermost pair ``[]`` is removed, one
    level per round: a document of depth d is empty after exactly d rounds. Only the bytes of brackets and
    quotes survive the first two steps, so the later ones work on a small fraction of ``raw``.

    Escapes: a JSON reader pairs a run of backslashes from its left, two by two, and an odd last one
    escapes the next byte; ``bytes.replace`` also matches leftmost first, so dropping ``\\`` pairs and then
    ``\"`` drops exactly the escaped backslashes and the escaped quotes (every other escape, ``\n`` or
    ``\u005B``, keeps only bytes that the next step drops). Most bodies have no backslash at all.
    """
    if b"\\" in raw:
        raw = raw.replace(_BACKSLASH_PAIR, b"").replace(_ESCAPED_QUOTE, b"")
    structure = raw.translate(None, _NOT_STRUCTURE)
    # Leftmost-first, "" is always an opening quote and its closing one: between a closing quote and the
    # next opening one valid JSON has a ":" or ",", deleted above, so "" there would come after a
    # bracket-holding string's opener, i.e. later than an earlier empty pair or not at all.
    structure = _STRING.sub(b"", structure.replace(b'""', b""))
    brackets = structure.translate(_ONE_KIND)
    for _ in range(max(max_depth, 0)):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)

def too_deep(max_depth: int, where: str | None = None) -> Issue:
    return Issue(f"JSON nesting depth exceeds the limit of {max_depth} levels", code="too-long", expression=where)
