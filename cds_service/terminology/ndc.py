"""National Drug Codes: the label forms (10 digits with hyphens) and the 11-digit form compared on."""

from __future__ import annotations


def normalize_ndc(code: str) -> str:
    """An NDC as 11 digits without hyphens (5-4-2), from the 10-digit hyphenated label forms or 11 digits."""
    code = code.strip()
    if "-" in code:
        parts = code.split("-")
        if len(parts) == 3:
            widths = (5, 4, 2)
            return "".join(p.zfill(w) for p, w in zip(parts, widths, strict=True))
        return code.replace("-", "")
    return code
