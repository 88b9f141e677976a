"""An observer of the pipeline that keeps everything it is told (``hooks.observer.Observer``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from cds_service.cards.model import Card


class Recorder:
    """An observer that keeps everything it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def call(self, service_id: str, hook: str, hook_instance: str) -> None:
        self.events.append(("call", service_id, hook, hook_instance))

    def phase(self, name: str) -> AbstractContextManager[object]:
        self.events.append(("phase", name))
        return nullcontext()

    def fetched(self, outcome: str, seconds: float) -> None:
        self.events.append(("fetched", outcome))

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def cards(self, service_id: str, hook: str, hook_instance: str, cards: Sequence[Card], kb_version: str) -> None:
        self.events.append(("cards", service_id, tuple((c.topic, c.indicator) for c in cards), kb_version))
