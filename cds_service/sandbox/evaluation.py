"""Running the service in-process on a fixture, a bundle or a request: the one pipeline, silently.

``request_for`` turns a fixture name, a FHIR bundle file or a CDS Hooks request file into the request an EHR
would send (dates rolled to the evaluation instant); ``evaluate`` answers it with the service's own pipeline
(``hooks.pipeline.run``) and its silent observer: nothing reaches metrics, the request log or the feedback
store. The settings are the service's own (``Settings.from_env()``: a dateTime without an offset is read in
``KETAMINE_CDS_LOCAL_TIMEZONE``, as the service reads it), with authentication and the FHIR fallback off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cds_service.config import Settings
from cds_service.hooks import pipeline
from cds_service.hooks.body import HookBody
from cds_service.hooks.catalog import SERVICES
from cds_service.hooks.pipeline import Answer
from cds_service.knowledge.loader import default_knowledge, with_settings
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import (
    FixtureEntry,
    FixturesNotFound,
    Manifest,
    UsageError,
    load_manifest,
    read_json,
)
from cds_service.sandbox.requests import build_request, load_template

DEFAULT_TEMPLATE: Final = "iv-ketamine-standard"
LOCAL_BASE_URL: Final = "http://127.0.0.1:8080"


def request_for(
    source: str, *, hook: str | None, order: str | None, now: datetime, root: str | None = None
) -> tuple[str, dict[str, Any], FixtureEntry | None]:
    """(label, rolled CDS Hooks request, manifest entry when the input is a library fixture whose own order
    is used) for a fixture name, a bundle file or a request file."""
    manifest, missing = _manifest_or_none(root)
    path = Path(source)
    entry: FixtureEntry | None = None
    if not path.exists():
        if manifest is None:
            raise UsageError(f"{source}: no such file, and no fixture name can be looked up: {missing}")
        try:
            entry = manifest.get(source)
        except KeyError as exc:
            raise UsageError(f"{source}: no such file or fixture ({exc.args[0]})") from exc
        path = manifest.root / entry.bundle
    elif manifest is not None:
        entry = manifest.find_by_path(path)
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable JSON file ({exc})") from exc
    if isinstance(doc.get("hook"), str):
        if order:
            raise UsageError("--order applies to a bundle; a request file already carries its draft order")
        if hook and hook != doc["hook"]:
            raise UsageError(f"{path} is an {doc['hook']} request; --hook {hook} does not match")
        anchor = roller.anchor_of(doc)
        return (entry.name if entry else str(path)), roller.roll(doc, now) if anchor else doc, entry
    if doc.get("resourceType") != "Bundle":
        raise UsageError(f"{path}: expected a FHIR Bundle or a CDS Hooks request")
    anchor = roller.anchor_of(doc) or (manifest.anchor if manifest and entry else None)
    if anchor is None:
        anchor = now.date()  # a bundle with today's dates: nothing to roll
    template_name = order or (entry.order_template if entry else DEFAULT_TEMPLATE)
    params = entry.order_params if entry and template_name == entry.order_template else {}
    try:
        template = load_template(template_name, root)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from exc
    except FixturesNotFound as exc:
        raise UsageError(f"order template {template_name!r} not found: {exc}") from exc
    body = build_request(
        doc, template, hook or "order-sign", anchor=anchor, params=params, name=entry.name if entry else path.stem
    )
    own_order = entry if entry and template_name == entry.order_template else None
    return (entry.name if entry else str(path)), roller.roll(body, now), own_order


def _manifest_or_none(root: str | None) -> tuple[Manifest | None, str]:
    """The fixture library, or None and why it could not be read."""
    try:
        return load_manifest(root), ""
    except FixturesNotFound as exc:
        return None, str(exc)
    except (OSError, ValueError, KeyError) as exc:
        return None, f"the fixture library's manifest.json could not be read ({type(exc).__name__}: {exc})"


def sandbox_settings() -> Settings:
    """The service's settings from the environment (``ConfigError`` names a malformed variable), with
    authentication and the FHIR fallback off."""
    return dataclasses.replace(Settings.from_env(), auth_enabled=False, fhir_server_allowlist=())


def evaluate(body: Mapping[str, Any], now: datetime, settings: Settings | None = None) -> Answer:
    """Run the one pipeline on ``body`` in-process, silently (``HookError`` for what the service refuses)."""
    hook = body.get("hook")
    services = {service.hook: service for service in SERVICES.values()}
    if not isinstance(hook, str) or hook not in services:
        raise UsageError(f"hook {hook!r} is not served here (expected one of {', '.join(services)})")
    settings = settings or sandbox_settings()
    return pipeline.run(
        services[hook],
        HookBody.parsed(body),
        kb=with_settings(default_knowledge(), settings),
        settings=settings,
        now=now,
        base_url=LOCAL_BASE_URL,
    )


def evaluate_request(body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The response body the service would answer to ``body`` (see ``evaluate``)."""
    return evaluate(body, now).decision.response()
