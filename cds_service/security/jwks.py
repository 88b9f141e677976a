"""Fetch and cache the JWK Sets of trusted clients.

Only URLs taken from configuration are ever fetched (a client's ``jwks_url`` or an allowlisted ``jku``):
the caller checks the allowlist before asking. Fetches have connect/read timeouts, a size cap, never
follow redirects, and accept only ``http``/``https`` URLs (``http`` only because configuration named it).
A set is cached for ``ttl_seconds``; an unknown ``kid`` triggers a refresh, at most once per
``min_refresh_interval`` seconds per URL, so forged tokens cannot turn the service into a request amplifier.
When a refresh fails the previously fetched keys stay in use. The service takes both from its settings
(``KETAMINE_CDS_JWKS_CACHE_TTL``, ``KETAMINE_CDS_JWKS_MIN_REFRESH_INTERVAL``: ``JwksCache.from_settings``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from cds_service.config import Settings

log = logging.getLogger(__name__)

ASYMMETRIC_KTY = frozenset({"EC", "RSA", "OKP"})


class JwksFetchError(Exception):
    """A JWK Set could not be fetched or parsed (the message names the URL's failure kind, no content)."""


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)  # one fetch at a time per URL
    keys: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    fetched_at: float | None = None  # monotonic time of the last successful fetch
    last_attempt: float | None = None  # monotonic time of the last fetch attempt (success or not)


class JwksCache:
    """Per-URL cache of JWK Sets with rate-limited refresh on unknown ``kid``."""

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        ttl_seconds: float = 3600.0,
        min_refresh_interval: float = 60.0,
        connect_timeout: float = 2.0,
        read_timeout: float = 3.0,
        max_bytes: int = 256 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session or requests.Session()
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_interval
        self._timeout = (connect_timeout, read_timeout)
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> JwksCache:
        """The cache the service uses: TTL and refresh interval from ``settings``, other limits as default."""
        return cls(
            ttl_seconds=float(settings.jwks_cache_ttl_seconds),
            min_refresh_interval=float(settings.jwks_min_refresh_interval_seconds),
            clock=clock,
        )

    @property
    def ttl_seconds(self) -> float:
        """How long a fetched set is used before it is fetched again."""
        return self._ttl

    @property
    def min_refresh_interval(self) -> float:
        """Fewest seconds between two fetch attempts for one URL."""
        return self._min_refresh

    def key(self, url: str, kid: str) -> Mapping[str, Any] | None:
        """The JWK named ``kid`` in the set at ``url``, or None when the set (even refreshed) lacks it."""
        with self._lock:
            entry = self._entries.setdefault(url, _Entry())
        with entry.lock:  # a slow JWK Set endpoint holds up only its own client
            now = self._clock()
            stale = entry.fetched_at is None or now - entry.fetched_at >= self._ttl
            if (stale or kid not in entry.keys) and self._may_fetch(entry, now):
                self._refresh(url, entry, now)
            return entry.keys.get(kid)

    def _may_fetch(self, entry: _Entry, now: float) -> bool:
        return entry.last_attempt is None or now - entry.last_attempt >= self._min_refresh

    def _refresh(self, url: str, entry: _Entry, now: float) -> None:
        entry.last_attempt = now
        try:
            entry.keys = self.fetch(url)
            entry.fetched_at = now
        except JwksFetchError as exc:
            log.warning("JWK Set fetch failed; keeping %d cached key(s)", len(entry.keys),
                        extra={"cds": {"jwks_url": url, "error": str(exc)}})

    def fetch(self, url: str) -> dict[str, Mapping[str, Any]]:
        """Fetch and parse one JWK Set: ``{kid: jwk}`` of its asymmetric signature keys."""
        if urlsplit(url).scheme not in ("https", "http"):
            raise JwksFetchError("unsupported URL scheme")
        try:
            with self._session.get(
                url, timeout=self._timeout, stream=True, allow_redirects=False,
                headers={"Accept": "application/json, application/jwk-set+json"},
            ) as resp:
                if resp.status_code != 200:
                    raise JwksFetchError(f"http-{resp.status_code}")
                body = self._read_capped(resp)
        except requests.Timeout as exc:
            raise JwksFetchError("timeout") from exc
        except requests.RequestException as exc:
            raise JwksFetchError(f"connection error ({type(exc).__name__})") from exc
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise JwksFetchError("not JSON") from exc
        return parse_jwks(data)

    def _read_capped(self, resp: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(chunk_size=16384):
            size += len(chunk)
            if size > self._max_bytes:
                raise JwksFetchError(f"larger than {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def parse_jwks(data: Any) -> dict[str, Mapping[str, Any]]:
    """``{kid: jwk}`` of the usable keys of a JWK Set: asymmetric, public, for signatures, with a ``kid``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise JwksFetchError("not a JWK Set (no 'keys' list)")
    keys: dict[str, Mapping[str, Any]] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if jwk.get("kty") not in ASYMMETRIC_KTY or "d" in jwk or jwk.get("use", "sig") != "sig":
            continue
        keys[kid] = jwk
    return keys
