"""Client JWT authentication on the CDS endpoints (issue 6), plus the security headers.

Every request under ``/cds-services`` (discovery, each service, each feedback endpoint, and any unknown path
there) needs ``Authorization: Bearer <JWT>``, except CORS preflight (``OPTIONS``). Health, metrics and docs
are public. The ``aud`` a token must carry is ``KETAMINE_CDS_PUBLIC_BASE_URL`` + the request path when
configured (set it behind a reverse proxy), else the URL as this process sees it (``request.base_url``).

A failure answers 401 with a generic OperationOutcome; the reason goes to the log and to the
``observe_jwt_rejection`` metric, never to the client. The token itself is never logged.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request

from cds_service.config import ConfigError, Settings
from cds_service.hooks.errors import simple_outcome
from cds_service.observability.audit import current_audit
from cds_service.observability.metrics import observe_jwt_rejection
from cds_service.observability.request_log import configure_logging
from cds_service.security import headers
from cds_service.security.jwks import JwksCache
from cds_service.security.replay import ReplayCache, ReplayCacheUnavailable, SqlReplayCache
from cds_service.security.trusted_clients import load_trusted_clients
from cds_service.security.verifier import AuthError, ClientIdentity, Verifier

log = logging.getLogger(__name__)

EXTENSION_KEY = "ketamine_auth"
AUTH_OFF_WARNING = (
    "AUTHENTICATION DISABLED (KETAMINE_CDS_AUTH=off): any caller can request cards about any patient. "
    "Use only for local sandboxes, never with real patient data."
)
GENERIC_MESSAGE = "Authentication failed: a valid client JWT (CDS Hooks 2.0) is required"


def build_verifier(settings: Settings, *, replay: ReplayCache | None = None,
                   jwks: JwksCache | None = None) -> Verifier:
    """The verifier for ``settings``; ``ConfigError`` when no trusted client is configured."""
    if not settings.trusted_clients_file:
        raise ConfigError(
            "KETAMINE_CDS_AUTH is on but KETAMINE_CDS_TRUSTED_CLIENTS names no trusted-clients file; "
            "configure the CDS clients allowed to call this service (or set KETAMINE_CDS_AUTH=off for a "
            "local sandbox only)"
        )
    clients = load_trusted_clients(settings.trusted_clients_file)
    if len(clients) == 0:
        raise ConfigError(
            f"KETAMINE_CDS_AUTH is on but {settings.trusted_clients_file} lists no trusted client"
        )
    return Verifier(
        clients,
        algorithms=settings.jwt_algorithms,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        leeway_seconds=settings.jwt_leeway_seconds,
        jwks=jwks if jwks is not None else JwksCache.from_settings(settings),
        replay=replay if replay is not None else SqlReplayCache(settings.database_url),
    )


def needs_auth(method: str, path: str) -> bool:
    return method != "OPTIONS" and headers.is_cds_path(path)


def audience_for(settings: Settings) -> str:
    """The URL a token for this request must name in ``aud``."""
    if settings.public_base_url:
        return settings.public_base_url + request.path
    return request.base_url


def bearer_token() -> str | None:
    raw = request.headers.get("Authorization", "")
    scheme, _, token = raw.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def unauthorized() -> Response:
    resp = jsonify(simple_outcome(GENERIC_MESSAGE, code="login"))
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = 'Bearer realm="cds-services"'
    return resp


def replay_unavailable() -> Response:
    resp = jsonify(simple_outcome("Authentication is temporarily unavailable; retry shortly",
                                  code="transient", severity="error"))
    resp.status_code = 503
    resp.headers["Retry-After"] = "5"
    return resp


def current_client() -> ClientIdentity | None:
    """The verified client of the request being served (None with auth off or outside a request)."""
    return g.get("cds_client")


def install(app: Flask, settings: Settings, *, verifier: Verifier | None = None) -> None:
    """Security headers on every response, and JWT verification before every CDS endpoint.

    Raises ``ConfigError`` when auth is on and no trusted client is configured; logs one loud warning
    when auth is off.
    """
    configure_logging(settings.log_level)  # so the warning below is already a JSON line
    headers.install(app, settings)
    if not settings.auth_enabled:
        app.extensions[EXTENSION_KEY] = None
        log.warning(AUTH_OFF_WARNING)
        return
    verifier = verifier or build_verifier(settings)
    app.extensions[EXTENSION_KEY] = verifier

    @app.before_request
    def _authenticate() -> Any:
        if not needs_auth(request.method, request.path):
            return None
        token = bearer_token()
        try:
            if token is None:
                raise AuthError("missing-token")
            identity = verifier.verify(token, audience_for(settings))
        except AuthError as exc:
            observe_jwt_rejection(exc.reason)
            log.warning(
                "client JWT rejected: %s%s", exc.reason, f" ({exc.detail})" if exc.detail else "",
                extra={"cds": {"event": "jwt-rejected", "reason": exc.reason,
                               "iss": (exc.iss or "")[:200] or None, "path": request.path}},
            )
            return unauthorized()
        except ReplayCacheUnavailable as exc:
            # fail closed: without the replay check a token is not accepted
            log.error("jti replay cache unavailable (%s): refusing the call", exc)
            return replay_unavailable()
        g.cds_client = identity
        current_audit().client_iss = identity.iss
        return None
