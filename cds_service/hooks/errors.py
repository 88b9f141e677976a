"""Protocol errors and the OperationOutcome bodies that carry them.

Every non-2xx answer of the service is an OperationOutcome that names the problem; a ``HookError`` is how
the hook pipeline (usable without Flask) says which status and which issues.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue. ``code`` is from the FHIR IssueType value set."""

    diagnostics: str
    code: str = "invalid"  # invalid | structure | required | value | not-found | not-supported | too-long ...
    severity: str = "error"  # fatal | error | warning | information
    expression: str | None = None  # FHIRPath-like location in the request body, e.g. "context.selections[0]"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = [self.expression]
        return out


class HookError(Exception):
    """A request the service answers with ``status`` (4xx, or 412 for data it could not obtain)."""

    def __init__(self, status: int, issues: Issue | Sequence[Issue]) -> None:
        self.status = status
        self.issues: tuple[Issue, ...] = (issues,) if isinstance(issues, Issue) else tuple(issues)
        if not self.issues:
            raise ValueError("HookError needs at least one issue")
        super().__init__(f"{status}: {self.issues[0].diagnostics}")

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """A FHIR OperationOutcome resource for ``issues`` (at least one)."""
    items = [i.to_json() for i in issues]
    if not items:
        raise ValueError("an OperationOutcome needs at least one issue")
    return {"resourceType": "OperationOutcome", "issue": items}


def simple_outcome(diagnostics: str, code: str = "invalid", severity: str = "error") -> dict[str, Any]:
    return operation_outcome([Issue(diagnostics, code=code, severity=severity)])
