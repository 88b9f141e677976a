"""§1 (v2) during a course: the concurrent-antidepressant card is not repeated (the decision was taken when the
course began); the checklist line stays and says so. Esketamine without an antidepressant is rules-v2's info."""

from __future__ import annotations

import pytest

from cds_service.rules.findings import CheckStatus
from cds_service.rules.indication import antidepressant_rule
from tests.builders.orders import iv_order
from tests.builders.records import given, record
from tests.clock import NOW


@pytest.mark.parametrize(("last_dose", "card"), [(56, False), (57, True)])
def test_antidepressant_card_not_repeated_during_a_course(kb, last_dose, card):  # type: ignore[no-untyped-def]
    rec = record(administrations=given(2, start_days_ago=last_dose + 3.5))  # no antidepressant on record
    out = antidepressant_rule(rec, iv_order(35), kb, NOW)
    assert bool(out.findings) is card
    (check,) = out.checks
    assert check.status is CheckStatus.NOT_MET
    assert ("not repeated as a card during the course" in check.note) is not card


def test_an_esketamine_course_does_not_silence_an_iv_ketamine_order(kb):  # type: ignore[no-untyped-def]
    rec = record(administrations=given(2, start_days_ago=10, drug="esketamine"))
    assert antidepressant_rule(rec, iv_order(35), kb, NOW).findings
