"""Verification of the CDS client JWT (CDS Hooks 2.0 §Trusting CDS Clients; RFC 8725).

Checks, cheapest and attacker-independent first, so a forged token never causes a JWK Set fetch:

1. header: ``typ`` is ``JWT``, ``alg`` is on the asymmetric allowlist (never ``none`` or HMAC, whatever
   the configuration says), ``kid`` present, ``jku`` (optional) a string;
2. ``iss`` is a trusted client;
3. ``aud`` equals the public URL of the endpoint called;
4. ``exp`` not passed, ``iat`` (and ``nbf``) not in the future, with a small leeway; ``exp - iat`` within the
   maximum lifetime; ``jti`` present;
5. ``tenant`` allowed for that client (when the client is restricted to tenants);
6. the signature, by PyJWT, with the key named by ``kid`` (see "Where the key comes from") and an explicit
   ``algorithms`` list;
7. ``jti`` never seen before while the token is valid (replay cache) — last, so only genuine tokens are recorded.

Every failure raises ``AuthError(reason)``; the reason is for logs and metrics, never for the client.

Where the key comes from (CDS Hooks 2.0: ``jku`` is optional, and a service keeps an allowlist of ``iss``
and ``jku``):

| the token's ``jku`` | ``kid`` in the client's configured keys (``jwks`` or ``jwks_url``) | key used |
|---|---|---|
| absent | yes / no | the configured key / ``unknown-kid`` |
| on the client's ``jku_allowlist`` (or its ``jwks_url``) | yes | the configured key; ``jku`` not fetched |
| on the allowlist | no | the set at ``jku`` (key rotation), fetched and cached; else ``unknown-kid`` |
| not on the allowlist | yes | the configured key; ``jku`` ignored, never fetched |
| not on the allowlist | no | ``unknown-kid``; ``jku`` never fetched |

The CDS Hooks sandbox, like many clients, names its own JWK Set in ``jku`` on every token: a client entry
with the sandbox's public key in ``jwks`` verifies those tokens without any fetch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt

from cds_service.config import ConfigError
from cds_service.security.jwks import ASYMMETRIC_KTY, JwksCache
from cds_service.security.replay import ReplayCache
from cds_service.security.trusted_clients import TrustedClient, TrustedClients

log = logging.getLogger(__name__)

# Asymmetric JWS algorithms PyJWT implements; anything else (none, HS*) is never accepted.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)

MAX_TOKEN_CHARS = 16 * 1024

# Every reason AuthError may carry (bounded, so it can label a metric).
REASONS = frozenset({
    "missing-token", "malformed", "bad-typ", "alg-not-allowed", "missing-kid", "missing-claim",
    "untrusted-iss", "wrong-aud", "expired", "iat-in-future", "nbf-in-future",
    "lifetime-too-long", "wrong-tenant", "unknown-kid", "bad-key", "bad-signature", "invalid-claims",
    "replayed-jti",
})


class AuthError(Exception):
    """The client is not authenticated; ``reason`` (one of ``REASONS``) says why, ``detail`` (optional, plain
    words) what an operator can do about it: both for the log only."""

    def __init__(self, reason: str, *, iss: str | None = None, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.detail = detail


@dataclass(frozen=True)
class ClientIdentity:
    """The verified caller."""

    iss: str
    tenant: str | None
    kid: str
    jti: str
    client_name: str | None = None


def allowed_algorithms(configured: Iterable[str]) -> tuple[str, ...]:
    """The configured algorithms that are asymmetric; ``ConfigError`` if none is left."""
    configured = tuple(configured)
    allowed = tuple(a for a in configured if a in ASYMMETRIC_ALGORITHMS)
    dropped = sorted(set(configured) - set(allowed))
    if dropped:
        log.warning("ignoring JWT algorithms that are not asymmetric signatures: %s", ", ".join(dropped))
    if not allowed:
        raise ConfigError(
            "KETAMINE_CDS_JWT_ALGORITHMS names no asymmetric algorithm "
            f"(allowed: {', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
        )
    return allowed


# NumericDate claims outside this range are not times a client means (year 9999 is ~2.5e11 s): a bound that
# also keeps NaN, infinities and integers too large for a float out of the arithmetic below.
_MAX_NUMERIC_DATE = 1e12


def _number(value: Any) -> TypeGuard[int | float]:
    """A JSON number that is a usable NumericDate (finite, |value| below ``_MAX_NUMERIC_DATE``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE  # False for NaN; ints compared exactly, never converted


class Verifier:
    """Verifies client JWTs against the trusted clients."""

    def __init__(
        self,
        clients: TrustedClients,
        *,
        algorithms: Iterable[str] = ("ES384", "RS384"),
        max_lifetime_seconds: int = 3600,
        leeway_seconds: int = 30,
        jwks: JwksCache | None = None,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.algorithms = allowed_algorithms(algorithms)
        self.max_lifetime = max_lifetime_seconds
        self.leeway = leeway_seconds
        self.jwks = jwks or JwksCache()
        self.replay = replay
        self.clock = clock

    def verify(self, token: str, audience_url: str) -> ClientIdentity:
        """Return the verified client, or raise ``AuthError``."""
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("malformed")
        header = self._header(token)
        alg, kid = header["alg"], header["kid"]
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise AuthError("malformed") from None
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthError("missing-claim")
        client = self.clients.get(iss)
        if client is None:
            raise AuthError("untrusted-iss", iss=iss)
        jku: str | None = header.get("jku")
        try:
            self._check_aud(claims.get("aud"), audience_url)
            exp, jti = self._check_times(claims)
            tenant = self._check_tenant(claims, client)
            self._check_signature(token, alg, self._jwk(client, jku, kid), audience_url, iss)
            if not self.replay.first_use(iss, jti, exp + self.leeway):
                raise AuthError("replayed-jti")
        except AuthError as exc:
            exc.iss = iss
            raise
        return ClientIdentity(iss=iss, tenant=tenant, kid=kid, jti=jti, client_name=client.name)

    def _header(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("malformed") from None
        if "jku" in header and not isinstance(header["jku"], str):
            raise AuthError("malformed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise AuthError("bad-typ")
        if header.get("alg") not in self.algorithms:
            raise AuthError("alg-not-allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("missing-kid")
        return header

    @staticmethod
    def _check_aud(aud: Any, audience_url: str) -> None:
        if isinstance(aud, str):
            ok = aud == audience_url
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            ok = audience_url in aud
        else:
            raise AuthError("missing-claim")
        if not ok:
            raise AuthError("wrong-aud")

    def _check_times(self, claims: Mapping[str, Any]) -> tuple[float, str]:
        raw_exp, raw_iat, jti = claims.get("exp"), claims.get("iat"), claims.get("jti")
        if raw_exp is None or raw_iat is None or not isinstance(jti, str) or not jti:
            raise AuthError("missing-claim")
        if not _number(raw_exp) or not _number(raw_iat):  # a string, NaN, 1e400, an integer of 400 digits ...
            raise AuthError("invalid-claims")
        exp, iat = float(raw_exp), float(raw_iat)
        now = self.clock()
        if now >= exp + self.leeway:
            raise AuthError("expired")
        if iat > now + self.leeway:
            raise AuthError("iat-in-future")
        nbf = claims.get("nbf")
        if nbf is not None and (not _number(nbf) or nbf > now + self.leeway):
            raise AuthError("nbf-in-future")
        if exp - iat > self.max_lifetime:
            raise AuthError("lifetime-too-long")
        return exp, jti

    @staticmethod
    def _check_tenant(claims: Mapping[str, Any], client: TrustedClient) -> str | None:
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError("wrong-tenant")
        if client.tenants is not None and tenant not in client.tenants:
            raise AuthError("wrong-tenant")
        return tenant

    def _jwk(self, client: TrustedClient, jku: str | None, kid: str) -> Mapping[str, Any]:
        """The key named ``kid``: the client's configured keys first, then an allowlisted ``jku`` (module doc)."""
        jwk = self.jwks.key(client.jwks_url, kid) if client.jwks_url is not None else client.inline_key(kid)
        if jwk is None and jku is not None and jku != client.jwks_url:
            if not client.allows_jku(jku):
                raise AuthError("unknown-kid", detail=(
                    "the key id is not among the client's configured keys, and the token's jku is not on the "
                    "client's jku_allowlist, so it was not fetched"
                ))
            jwk = self.jwks.key(jku, kid)
        if jwk is None:
            raise AuthError("unknown-kid", detail="the key id is in none of the client's key sets")
        if jwk.get("kty") not in ASYMMETRIC_KTY:
            raise AuthError("bad-key")
        return jwk

    def _check_signature(
        self, token: str, alg: str, jwk: Mapping[str, Any], audience_url: str, iss: str
    ) -> None:
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=jwk.get("alg") or alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            raise AuthError("bad-key") from None
        if key.algorithm_name not in self.algorithms:
            raise AuthError("bad-key")
        try:
            # Times were checked above against the injectable clock; PyJWT re-checks aud, iss, required claims.
            jwt.decode(
                token,
                key=key,
                algorithms=list(self.algorithms),
                audience=audience_url,
                issuer=iss,
                options={
                    "verify_exp": False, "verify_iat": False, "verify_nbf": False,
                    "require": ["exp", "iat", "iss", "aud", "jti"],
                },
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            raise AuthError("bad-signature") from None
        except jwt.InvalidKeyError:
            raise AuthError("bad-key") from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid-claims") from None
