"""Decoding the vital-sign searches only as far as the record reads them (``fhir/capped_search.py``,
``record/partial.py``) changes nothing but the time: through the HTTP edge, every request of the corpus
(``perturbed_requests.py``: every fixture request of both hooks, the benchmark workloads, seeded perturbations
in the shapes real feeds and hostile clients send) gets the same status, the same cards and the same patient
record as when the whole prefetch is decoded first; and the same data read from a FHIR server instead of
prefetched (every resource decoded whole by the FHIR client) gives the same record and cards too. The real-feed
shapes of ``tests/realfeeds`` are checked the same way. The intake reads nothing of a partial reading but
``INTAKE_ELEMENTS``."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import msgspec
import pytest
import responses

from cds_service.config import Settings
from cds_service.fhir.templates import fill
from cds_service.hooks import gather, pipeline
from cds_service.hooks.body import HookBody, decode_hook_body
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.errors import HookError
from cds_service.knowledge.model import Knowledge
from cds_service.record import builder
from cds_service.record.model import PatientRecord
from cds_service.record.partial import INTAKE_ELEMENTS, PartialResource
from tests.record.perturbed_requests import (
    PERTURBATIONS,
    corpus,
    fixture_body,
    perturbed,
    service_of,
    without_uuids,
)

NOW = datetime.fromisoformat("2026-11-23T12:00:00+00:00")
FHIR = "https://fhir.differential.test/r4"
SETTINGS = Settings(auth_enabled=False, fhir_server_allowlist=(FHIR,), database_url="sqlite://")
# Perturbations a FHIR server answering the service's own queries cannot reproduce (a next page it never serves).
SERVER_CANNOT = ("next-page",)
Outcome = tuple[int, Any, tuple[PatientRecord, ...]]


def answer(kb: Knowledge, body: HookBody | Mapping[str, Any], monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """(status, cards or issues, records built) of one call through the pipeline, the clock at NOW."""
    records: list[PatientRecord] = []
    build = builder.build_record

    def recording(*args: Any, **kwargs: Any) -> PatientRecord:
        records.append(build(*args, **kwargs))
        return records[-1]

    monkeypatch.setattr(gather, "build_record", recording)
    request = body if isinstance(body, HookBody) else HookBody.parsed(body)
    service = service_of(request.envelope)
    try:
        cards = pipeline.handle_hook_call(service, request, kb=kb, settings=SETTINGS, now=NOW,
                                          base_url="https://cds.example.org")  # fmt: skip
    except HookError as exc:
        return exc.status, [(i.code, i.diagnostics, i.expression) for i in exc.issues], tuple(records)
    return 200, without_uuids(cards), tuple(records)


def partly_decoded(kb: Knowledge, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Through the edge: the envelope decoded, the vital-sign searches partly."""
    try:
        body = decode_hook_body(raw, SETTINGS.max_json_depth)
    except HookError as exc:
        return exc.status, [(i.code, i.diagnostics, i.expression) for i in exc.issues], ()
    return answer(kb, body, monkeypatch)


def wholly_decoded(kb: Knowledge, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """The same request with every member decoded first (as a body parsed before the service sees it)."""
    try:
        parsed = msgspec.json.decode(raw)
    except msgspec.ValidationError:  # a number beyond a double: the edge's answer
        return partly_decoded(kb, raw, monkeypatch)
    return answer(kb, parsed, monkeypatch)


def assert_same(kb: Knowledge, name: str, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    partly, wholly = partly_decoded(kb, raw, monkeypatch), wholly_decoded(kb, raw, monkeypatch)
    assert partly[0] == wholly[0], name
    assert partly[1] == wholly[1], name
    assert partly[2] == wholly[2], name
    return partly


@cache
def corpus_items() -> list[tuple[str, str, bytes]]:
    return list(corpus(NOW, seeds=1))


def test_the_corpus_reaches_what_partial_decoding_decides_on() -> None:
    """The corpus holds partial readings completed and not, set aside, and refused for a huge number."""
    names = [name for name, _sid, _raw in corpus_items()]
    assert len(names) > 600
    for part in ("/order-select", "workload/", "huge-number", "duplicate-members", "another-patient",
                 "future-readings", "many-readings", "conflicting-copies", "stray-entries", "odd-heads"):  # fmt: skip
        assert any(part in n for n in names), part


@pytest.mark.parametrize("chunk", range(4))
def test_partial_decoding_gives_the_same_answer_and_record(kb: Knowledge, monkeypatch: pytest.MonkeyPatch,
                                                           chunk: int) -> None:  # fmt: skip
    made = completed = 0
    counting = PartialResource.complete

    def count(self: PartialResource) -> dict[str, Any]:
        nonlocal completed
        completed += 1
        return counting(self)

    monkeypatch.setattr(PartialResource, "complete", count)
    statuses = set()
    for name, _sid, raw in corpus_items()[chunk::4]:
        status, _answer, records = assert_same(kb, name, raw, monkeypatch)
        statuses.add(status)
        made += sum(len(r.blood_pressures) + len(r.weights) for r in records)
    assert completed and made and {200, 400} <= statuses


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_the_real_feed_shapes_give_the_same_answer_and_record(kb: Knowledge, monkeypatch: pytest.MonkeyPatch,
                                                              hook: str) -> None:  # fmt: skip
    from tests.realfeeds.test_realfeeds_shapes import SHAPES, request_for

    for shape in SHAPES:
        body = request_for(shape, hook, server=None)
        status, _cards, records = assert_same(kb, shape.name, json.dumps(body).encode(), monkeypatch)
        assert status == 200 and records, shape.name


# --------------------------------------------------------------------------- the same data without prefetch


def _query_key(url: str) -> tuple[str, frozenset[tuple[str, str]]]:
    parts = urlsplit(url)
    return parts.path.rstrip("/").split("/r4/", 1)[-1], frozenset(parse_qsl(parts.query, keep_blank_values=True))


@contextmanager
def served(body: dict[str, Any]) -> Iterator[None]:
    """A FHIR server that answers each of the service's queries with what the prefetch holds for its key."""
    answers = {}
    for key in SERVICES[service_of(body)].prefetch:
        if key.key in body.get("prefetch", {}):
            answers[_query_key(f"{FHIR}/{fill(key.template, body['context'])}")] = body["prefetch"][key.key]

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        found = answers.get(_query_key(request.url))
        if found is None:
            return 404, {}, json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(found)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, url=re.compile(f"{re.escape(FHIR)}/.*"), callback=reply)
        yield


def without_prefetch_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    names = sorted({n.split("/")[0] for n, _s, _r in corpus_items() if "/order-" in n and "workload" not in n})
    rng = random.Random(17)
    for name in names[::3]:
        for hook in ("order-sign", "order-select"):
            body = fixture_body(name, hook)
            chosen = rng.sample(sorted(set(PERTURBATIONS_FOR_SERVER)), rng.randint(0, 3))
            yield f"{name}/{hook}:{'+'.join(chosen)}", perturbed(body, chosen, rng, NOW)


PERTURBATIONS_FOR_SERVER = [p for p in PERTURBATIONS if p not in SERVER_CANNOT]


def test_the_same_data_read_from_a_fhir_server_gives_the_same_answer_and_record(
    kb: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = list(without_prefetch_cases())
    assert len(cases) > 80
    for name, body in cases:
        body = body | {"fhirServer": FHIR}
        prefetched = partly_decoded(kb, json.dumps(body).encode(), monkeypatch)
        fetched_body = {k: v for k, v in body.items() if k != "prefetch"}
        with served(body):
            fetched = answer(kb, fetched_body, monkeypatch)
        prefetched = _as_if_fetched(prefetched)
        assert prefetched[0] == fetched[0] == 200, name
        assert prefetched[1] == fetched[1], name
        assert prefetched[2] == fetched[2], name


def _as_if_fetched(outcome: Outcome) -> Outcome:
    """The words of the one gap that says where data came from: an error entry in a search the EHR sent, or one
    the FHIR server answered."""
    said, fetched = "the EHR reported an error while prefetching", "the FHIR server reported an error"
    cards = json.loads(json.dumps(outcome[1]).replace(said, fetched))
    records = tuple(
        replace(r, data_gaps=tuple(replace(g, reason=g.reason.replace(said, fetched)) for g in r.data_gaps))
        for r in outcome[2]
    )
    return outcome[0], cards, records


# --------------------------------------------------------------------------- the intake reads only the head


class _Strict(PartialResource):
    """A partial reading that fails the test when anything but its intake elements is read before completion."""

    __slots__ = ()
    read: ClassVar[set[str]] = set()

    @staticmethod
    def decode(text: Any) -> dict[str, Any]:
        whole: dict[str, Any] = json.loads(text)
        return whole

    def _note(self, key: object) -> None:
        assert key in INTAKE_ELEMENTS, f"the intake read {key!r} of a partial reading"
        _Strict.read.add(str(key))

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the intake iterated a partial reading")

    def items(self) -> Any:
        raise AssertionError("the intake iterated a partial reading")


def test_the_intake_reads_nothing_but_the_intake_elements_of_a_partial_reading(
    kb: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds_service.fhir import capped_search

    def strict(text: msgspec.Raw, head: Any) -> Any:
        made = original(text, head)
        if isinstance(made, PartialResource):
            reading = _Strict(made)
            reading.text = bytes(text)
            return reading
        return made

    original = capped_search._resource
    monkeypatch.setattr(capped_search, "_resource", strict)
    for name, _sid, raw in corpus_items()[::5]:
        assert_same(kb, name, raw, monkeypatch)
    assert {"resourceType", "status", "code", "effectiveDateTime"} <= _Strict.read
