"""The one validated model of CDS Hooks cards (cds-hooks-spec.md §4).

Building an object that breaks a rule raises ``CardModelError``: a card that is not conformant cannot
exist. ``to_json()`` emits only the attributes that have a value (no nulls, no empty arrays).
"""

from __future__ import annotations

import re
import uuid as uuid_lib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cds_service.knowledge.model import Indicator

INDICATORS = tuple(i.value for i in Indicator)
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
SUMMARY_MAX = 139  # the longest summary a card may have: CDS Hooks asks for fewer than 140 characters
_RESOURCE_ID = re.compile(r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_ABSOLUTE_URL = re.compile(r"^https?://[^\s/]+[^\s]*$")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class CardModelError(ValueError):
    """A card, suggestion, action, link or coding that CDS Hooks does not allow."""


def _text(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CardModelError(f"{what} must be a non-empty string")


def _optional_text(value: Any, what: str) -> None:
    if value is not None:
        _text(value, what)


def _uuid(value: Any, what: str) -> None:
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return  # the form new_uuid() makes, which UUID() accepts: no need to parse it
    try:
        uuid_lib.UUID(str(value))
    except ValueError as exc:
        raise CardModelError(f"{what} must be a UUID (got {value!r})") from exc


def _url(value: Any, what: str) -> None:
    if not isinstance(value, str) or not _ABSOLUTE_URL.match(value):
        raise CardModelError(f"{what} must be an absolute http(s) URL")


def new_uuid() -> str:
    return str(uuid_lib.uuid4())


def _compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without None, [], {} and "" (a true value is kept at once: one test instead of four)."""
    return {k: v for k, v in data.items() if v or not (v is None or v == [] or v == {} or v == "")}


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def __post_init__(self) -> None:
        _text(self.system, "Coding.system")
        _text(self.code, "Coding.code")
        _optional_text(self.display, "Coding.display")

    def to_json(self) -> dict[str, Any]:
        return _compact({"system": self.system, "code": self.code, "display": self.display})


@dataclass(frozen=True, slots=True)
class Source:
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None

    def __post_init__(self) -> None:
        _text(self.label, "Source.label")
        if self.url is not None:
            _url(self.url, "Source.url")
        if self.icon is not None:
            _url(self.icon, "Source.icon")
        if self.topic is not None and not isinstance(self.topic, Coding):
            raise CardModelError("Source.topic must be a Coding")

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "label": self.label,
                "url": self.url,
                "icon": self.icon,
                "topic": self.topic.to_json() if self.topic else None,
            }
        )


@dataclass(frozen=True, slots=True)
class Action:
    """``create``/``update`` carry the whole resource; ``delete`` carries ``resource_id`` only."""

    type: str
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ACTION_TYPES:
            raise CardModelError(f"Action.type must be one of {ACTION_TYPES} (got {self.type!r})")
        _text(self.description, "Action.description")
        if self.type == "delete":
            if self.resource is not None:
                raise CardModelError("a delete action carries resourceId, not a resource")
            if not isinstance(self.resource_id, str) or not _RESOURCE_ID.match(self.resource_id):
                raise CardModelError("a delete action needs resourceId as a relative reference Type/id")
        else:
            if not isinstance(self.resource, Mapping) or not isinstance(self.resource.get("resourceType"), str):
                raise CardModelError(f"a {self.type} action needs a FHIR resource")
            if self.resource_id is not None and not _RESOURCE_ID.match(self.resource_id):
                raise CardModelError("Action.resourceId must be a relative reference Type/id")

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "type": self.type,
                "description": self.description,
                "resource": dict(self.resource) if self.resource is not None else None,
                "resourceId": self.resource_id,
            }
        )


@dataclass(frozen=True, slots=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...]
    uuid: str = field(default_factory=new_uuid)
    is_recommended: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        _text(self.label, "Suggestion.label")
        _uuid(self.uuid, "Suggestion.uuid")
        if not self.actions or not all(isinstance(a, Action) for a in self.actions):
            raise CardModelError("a suggestion needs at least one Action")

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "label": self.label,
                "uuid": self.uuid,
                "isRecommended": self.is_recommended,
                "actions": [a.to_json() for a in self.actions],
            }
        )


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str
    type: str = "absolute"
    app_context: str | None = None
    autolaunchable: bool | None = None

    def __post_init__(self) -> None:
        _text(self.label, "Link.label")
        _url(self.url, "Link.url")
        if self.type not in LINK_TYPES:
            raise CardModelError(f"Link.type must be one of {LINK_TYPES}")
        if self.app_context is not None and self.type != "smart":
            raise CardModelError("Link.appContext is allowed only on smart links")

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "label": self.label,
                "url": self.url,
                "type": self.type,
                "appContext": self.app_context,
                "autolaunchable": self.autolaunchable,
            }
        )


@dataclass(frozen=True, slots=True)
class Card:
    summary: str
    indicator: str
    source: Source
    detail: str | None = None
    uuid: str = field(default_factory=new_uuid)
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: str | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()
    extension: Mapping[str, Any] | None = None  # a pre-coordinated JSON object, keys reverse-DNS (spec §Extensions)

    @property
    def topic(self) -> str | None:
        """The code of ``source.topic`` (the rule topic), None when the card has none."""
        return self.source.topic.code if self.source.topic is not None else None

    def __post_init__(self) -> None:
        for name in ("suggestions", "override_reasons", "links"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _text(self.summary, "Card.summary")
        if len(self.summary) > SUMMARY_MAX:
            raise CardModelError(f"Card.summary must be shorter than {SUMMARY_MAX + 1} characters")
        if self.indicator not in INDICATORS:
            raise CardModelError(f"Card.indicator must be one of {INDICATORS} (got {self.indicator!r})")
        if not isinstance(self.source, Source):
            raise CardModelError("Card.source must be a Source")
        _optional_text(self.detail, "Card.detail")
        _uuid(self.uuid, "Card.uuid")
        if self.suggestions:
            if self.selection_behavior not in SELECTION_BEHAVIORS:
                raise CardModelError("a card with suggestions needs selectionBehavior at-most-one or any")
            recommended = sum(1 for s in self.suggestions if s.is_recommended)
            if self.selection_behavior == "at-most-one" and recommended > 1:
                raise CardModelError("at-most-one allows at most one recommended suggestion")
            ids = [s.uuid for s in self.suggestions]
            if len(set(ids)) != len(ids):
                raise CardModelError("suggestion uuids must be unique")
        elif self.selection_behavior is not None:
            raise CardModelError("selectionBehavior is only for cards with suggestions")
        for reason in self.override_reasons:
            if not isinstance(reason, Coding) or not reason.display:
                raise CardModelError("every override reason is a Coding with a display")
        if any(not isinstance(link, Link) for link in self.links):
            raise CardModelError("Card.links must be Links")
        if self.extension is not None and (
            not isinstance(self.extension, Mapping) or not all(isinstance(k, str) and k for k in self.extension)
        ):
            raise CardModelError("Card.extension must be a JSON object with string keys")

    @property
    def topic_code(self) -> str | None:
        return self.source.topic.code if self.source.topic else None

    def to_json(self) -> dict[str, Any]:
        return _compact(
            {
                "uuid": self.uuid,
                "summary": self.summary,
                "detail": self.detail,
                "indicator": self.indicator,
                "source": self.source.to_json(),
                "suggestions": [s.to_json() for s in self.suggestions],
                "selectionBehavior": self.selection_behavior,
                "overrideReasons": [r.to_json() for r in self.override_reasons],
                "links": [link.to_json() for link in self.links],
                "extension": dict(self.extension) if self.extension else None,
            }
        )
