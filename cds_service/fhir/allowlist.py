"""Which ``fhirServer`` URLs the service may call (``KETAMINE_CDS_FHIR_SERVER_ALLOWLIST``).

An entry is a URL prefix. https servers match https entries; plain http is allowed only for a server
matching an entry that itself says ``http://`` (local sandboxes). Matching is on scheme, host, port and
whole path segments, so ``https://fhir.example.org`` does not admit ``https://fhir.example.org.evil.net``
or ``https://fhir.example.org/r4-other`` when the entry is ``https://fhir.example.org/r4``. A refusal names
the first difference from the entries for the server's host: scheme, then port, then path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from cds_service.config import ConfigError


@dataclass(frozen=True, slots=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str  # no trailing slash


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


class ServerAllowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        prefixes: list[_Prefix] = []
        for entry in entries:
            parts = _split(entry)
            if parts is None or parts.username or parts.password or parts.query or parts.fragment:
                raise ConfigError(
                    f"KETAMINE_CDS_FHIR_SERVER_ALLOWLIST: {entry!r} is not an http(s) URL prefix "
                    "(scheme, host, optional path; no credentials, query or fragment)"
                )
            prefixes.append(
                _Prefix(parts.scheme, (parts.hostname or "").lower(), _port(parts), parts.path.rstrip("/"))
            )
        self._prefixes = tuple(prefixes)

    def __bool__(self) -> bool:
        return bool(self._prefixes)

    def refusal(self, server: str) -> str | None:
        """None when ``server`` may be called, else the reason in plain words (no URL echoed)."""
        parts = _split(server)
        if parts is None:
            return "fhirServer is not an http(s) URL"
        if parts.username or parts.password or parts.query or parts.fragment:
            return "fhirServer must not carry credentials, a query or a fragment"
        if not self._prefixes:
            return "no FHIR server is allowlisted for fallback reads (KETAMINE_CDS_FHIR_SERVER_ALLOWLIST)"
        host, port, path = (parts.hostname or "").lower(), _port(parts), parts.path.rstrip("/")
        for p in self._prefixes:
            if p.scheme == parts.scheme and p.host == host and p.port == port and _path_within(path, p.path):
                return None
        return _mismatch(parts.scheme, port, [p for p in self._prefixes if p.host == host])


def _mismatch(scheme: str, port: int, entries: list[_Prefix]) -> str:
    """Why no entry admits a server: the first difference from the entries for its host, in plain words."""
    if not entries:
        return "fhirServer's host is not on this service's allowlist"
    same_scheme = [p for p in entries if p.scheme == scheme]
    if not same_scheme:
        if scheme == "http":
            return "fhirServer uses plain http, and the allowlist admits its host only over https"
        return "fhirServer uses https, and the allowlist admits its host only over plain http"
    if all(p.port != port for p in same_scheme):
        allowed = ", ".join(str(n) for n in sorted({p.port for p in same_scheme}))
        return f"fhirServer's port {port} is not the allowlisted port of its host ({allowed})"
    return "fhirServer's path is outside the allowlisted path of its host"


def _path_within(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def same_server(url: str, base: str) -> bool:
    """``url`` is on the FHIR server ``base`` (same scheme, host, port, under the base path)."""
    u, b = _split(url), _split(base)
    if u is None or b is None or u.username or u.password:
        return False
    return (
        u.scheme == b.scheme
        and (u.hostname or "").lower() == (b.hostname or "").lower()
        and _port(u) == _port(b)
        and _path_within(u.path.rstrip("/"), b.path.rstrip("/"))
    )
