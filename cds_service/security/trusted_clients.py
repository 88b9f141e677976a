"""The CDS clients this service trusts, loaded from ``KETAMINE_CDS_TRUSTED_CLIENTS`` (JSON or YAML).

File format (YAML shown; the same structure in JSON works)::

    clients:
      - iss: https://ehr.example.org            # required, unique
        jwks_url: https://ehr.example.org/jwks  # either jwks_url ...
        # jwks: {keys: [{kty: EC, crv: P-384, kid: k1, x: ..., y: ...}]}   # ... or an inline JWK Set
        tenant: [org-1, org-2]                  # optional: the token's ``tenant`` must be one of these
        jku_allowlist: [https://ehr.example.org/jwks]   # optional: JWK Set URLs a token may name in ``jku``

A top-level list of clients is accepted too. ``jwks_url`` is implicitly on the client's ``jku`` allowlist.
A token is verified with the configured key its ``kid`` names; its ``jku`` is fetched only when the key is
not among them and the ``jku`` is allowlisted (key rotation), and is otherwise ignored (``verifier.py``).
Only ``http``/``https`` URLs are accepted; ``http`` is allowed because configuration says so (local
sandboxes), never because a token asks for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from cds_service.config import ConfigError

log = logging.getLogger(__name__)

_CLIENT_KEYS = frozenset({"iss", "jwks_url", "jwks", "tenant", "jku_allowlist", "name"})


class TrustedClientsError(ConfigError):
    """The trusted-clients file is missing or malformed."""


@dataclass(frozen=True)
class TrustedClient:
    """One CDS client allowed to call the service."""

    iss: str
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = None
    tenants: frozenset[str] | None = None  # None: the client is not restricted to a tenant
    jku_allowlist: tuple[str, ...] = ()
    name: str | None = None

    def allows_jku(self, jku: str) -> bool:
        """Exact match against the configured JWK Set URLs (no prefix or pattern matching)."""
        return jku in self.jku_allowlist or (self.jwks_url is not None and jku == self.jwks_url)

    def inline_key(self, kid: str) -> Mapping[str, Any] | None:
        """The key named ``kid`` in the inline ``jwks``, if the client has one and it holds that key."""
        keys = self.jwks.get("keys", ()) if self.jwks is not None else ()
        return next((k for k in keys if k.get("kid") == kid), None)


@dataclass(frozen=True)
class TrustedClients:
    """The trusted clients, by ``iss``."""

    by_iss: Mapping[str, TrustedClient]

    def get(self, iss: str) -> TrustedClient | None:
        return self.by_iss.get(iss)

    def __len__(self) -> int:
        return len(self.by_iss)


def load_trusted_clients(path: str | Path) -> TrustedClients:
    """Read and validate the trusted-clients file; raise ``TrustedClientsError`` naming the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrustedClientsError(f"KETAMINE_CDS_TRUSTED_CLIENTS: cannot read {p}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise TrustedClientsError(f"KETAMINE_CDS_TRUSTED_CLIENTS: {p} is not valid JSON/YAML: {exc}") from exc
    return parse_trusted_clients(data, source=str(p))


def parse_trusted_clients(data: Any, *, source: str = "trusted clients") -> TrustedClients:
    """Validate already-parsed configuration (a mapping with ``clients`` or a list of clients)."""
    if isinstance(data, Mapping):
        unknown = set(data) - {"clients"}
        if unknown:
            raise TrustedClientsError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'clients'")
        data = data.get("clients")
    if not isinstance(data, list):
        raise TrustedClientsError(f"{source}: expected a list of clients (or a mapping with 'clients')")
    by_iss: dict[str, TrustedClient] = {}
    for i, raw in enumerate(data):
        client = _parse_client(raw, f"{source}: clients[{i}]")
        if client.iss in by_iss:
            raise TrustedClientsError(f"{source}: clients[{i}]: duplicate iss {client.iss!r}")
        by_iss[client.iss] = client
    return TrustedClients(by_iss=by_iss)


def _parse_client(raw: Any, where: str) -> TrustedClient:
    if not isinstance(raw, Mapping):
        raise TrustedClientsError(f"{where}: expected a mapping")
    unknown = set(raw) - _CLIENT_KEYS
    if unknown:
        raise TrustedClientsError(f"{where}: unknown key(s) {sorted(unknown)}")
    iss = raw.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        raise TrustedClientsError(f"{where}: 'iss' is required (a non-empty string)")
    where = f"{where} (iss {iss!r})"
    jwks_url = raw.get("jwks_url")
    jwks = raw.get("jwks")
    if (jwks_url is None) == (jwks is None):
        raise TrustedClientsError(f"{where}: give exactly one of 'jwks_url' or 'jwks'")
    if jwks_url is not None:
        jwks_url = _url(jwks_url, f"{where}: jwks_url")
    if jwks is not None:
        jwks = _jwks(jwks, f"{where}: jwks")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise TrustedClientsError(f"{where}: 'name' must be a string")
    return TrustedClient(
        iss=iss,
        jwks_url=jwks_url,
        jwks=jwks,
        tenants=_tenants(raw.get("tenant"), f"{where}: tenant"),
        jku_allowlist=tuple(_url(u, f"{where}: jku_allowlist") for u in _str_list(raw.get("jku_allowlist"), where)),
        name=name,
    )


def _str_list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TrustedClientsError(f"{where}: 'jku_allowlist' must be a list of URLs")
    return value


def _tenants(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise TrustedClientsError(f"{where}: must be a non-empty string or a non-empty list of strings")
    return frozenset(values)


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise TrustedClientsError(f"{where}: must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise TrustedClientsError(f"{where}: {value!r} is not an absolute http(s) URL")
    if parts.scheme == "http":
        log.warning("trusted client JWK Set URL uses plain http (acceptable for local sandboxes only)")
    return value


def _jwks(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise TrustedClientsError(f"{where}: must be a JWK Set with a non-empty 'keys' list")
    for j, key in enumerate(value["keys"]):
        if not isinstance(key, Mapping) or not isinstance(key.get("kid"), str) or not key["kid"]:
            raise TrustedClientsError(f"{where}: keys[{j}] needs a 'kid'")
        if key.get("kty") not in ("EC", "RSA", "OKP"):
            raise TrustedClientsError(f"{where}: keys[{j}] must be an asymmetric public key (kty EC, RSA or OKP)")
        if "d" in key:
            raise TrustedClientsError(f"{where}: keys[{j}] contains private key material ('d'); give the public key")
    return value
