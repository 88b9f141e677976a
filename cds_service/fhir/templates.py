"""Prefetch template tokens (CDS Hooks 2.0 §Prefetch tokens).

Only ``{{context.<field>}}`` for root-level primitive context fields and the four ``{{user*Id}}`` tokens
exist in 2.0. A template whose token cannot be filled is not fetched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
CONTEXT_TOKENS = ("patientId", "userId", "encounterId")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class TemplateError(ValueError):
    """The template cannot be filled from this request's context (the message names the token)."""


def tokens_in(template: str) -> list[str]:
    return _TOKEN.findall(template)


def is_supported_token(token: str) -> bool:
    if token.startswith("context."):
        return token.removeprefix("context.") in CONTEXT_TOKENS
    return token in _USER_TOKENS


def fill(template: str, context: Mapping[str, Any]) -> str:
    """The template with every token replaced by its URL-escaped value; TemplateError if one is unknown."""

    def value(match: re.Match[str]) -> str:
        token = match.group(1)
        if not is_supported_token(token):
            raise TemplateError(f"unsupported prefetch token {{{{{token}}}}}")
        if token.startswith("context."):
            raw = context.get(token.removeprefix("context."))
            if token == "context.userId":  # "Practitioner/123" is a read path: keep its slash
                return _checked(raw, token, safe="/")
            return _checked(raw, token)
        user = context.get("userId")
        wanted = _USER_TOKENS[token]
        if isinstance(user, str) and user.startswith(wanted + "/"):
            return _checked(user.split("/", 1)[1], token)
        raise TemplateError(f"{{{{{token}}}}}: context.userId is not a {wanted}")

    return _TOKEN.sub(value, template)


def _checked(raw: Any, token: str, safe: str = "") -> str:
    if not isinstance(raw, str) or not raw:
        raise TemplateError(f"{{{{{token}}}}}: no value in the hook context")
    return quote(raw, safe=safe)
