"""Rules of this module: being implemented (see the issue tracker)."""

from cds_service.rules.findings import Rule

RULES: tuple[Rule, ...] = ()
