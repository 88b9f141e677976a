"""HTTP reads from the CDS client's FHIR server (the prefetch fallback).

One ``FhirClient`` per hook call and server: the bearer token goes only to that server, never into a
log. Every request has connect/read timeouts plus an overall deadline (a server that drips one byte at a
time is cut off), redirects are followed only within the same server, bodies are streamed with a size
cap, and ``next`` links are followed only on the same server up to a page cap. Failures raise
``FetchError`` with a short kind (for metrics) and a reason in plain words (for the cards).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin

import requests

from cds_service.config import Settings
from cds_service.fhir.allowlist import same_server
from cds_service.record.fhirdata import bundle_resources, next_link

MAX_REDIRECTS = 3
_CHUNK = 64 * 1024
# a server that keeps sending, too slowly: cut off by the overall deadline, not by the read timeout
DEADLINE_REASON = "the FHIR server's answer did not finish in time"


def new_session() -> requests.Session:
    """A session for FHIR reads: pooled connections, and no cookies (a cookie set during one user's call
    must never ride along on another user's call)."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def _unobserved(outcome: str, seconds: float) -> None:
    return None


class FetchError(Exception):
    """A read that did not yield usable data. ``kind``: timeout, connection, http-<status>, too-large,
    not-json, not-fhir, redirect, other-server, error. ``reason``: plain words, no URL, no PHI."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SearchResult:
    resources: tuple[Mapping[str, Any], ...]
    pages: int
    problem: str | None = None  # set when the result is incomplete (page cap, a later page failed, ...)
    outcome_errors: int = 0  # OperationOutcome entries of severity error/fatal in the Bundle(s)


class FhirClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        settings: Settings,
        session: requests.Session,
        on_fetch: Callable[[str, float], None] = _unobserved,
    ) -> None:
        """``on_fetch(outcome, seconds)`` is told of every GET: "ok" or the ``FetchError`` kind."""
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._settings = settings
        self._session = session
        self._on_fetch = on_fetch

    def __repr__(self) -> str:  # never show the token
        return f"FhirClient({self.base_url!r})"

    def url_for(self, relative: str) -> str:
        return f"{self.base_url}/{relative.lstrip('/')}"

    # ----- single reads -----
    def get_json(self, url: str) -> dict[str, Any]:
        """GET ``url`` (on this server) and return the JSON object; FetchError on any failure."""
        started = time.monotonic()
        outcome = "ok"
        try:
            return self._get_json(url, started)
        except FetchError as exc:
            outcome = exc.kind
            raise
        finally:
            self._on_fetch(outcome, time.monotonic() - started)

    def _get_json(self, url: str, started: float) -> dict[str, Any]:
        s = self._settings
        deadline = started + s.fhir_connect_timeout + s.fhir_read_timeout
        headers = {"Accept": "application/fhir+json, application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for _ in range(MAX_REDIRECTS + 1):
            if not same_server(url, self.base_url):
                raise FetchError("other-server", "the FHIR server pointed to a different server")
            try:
                response = self._session.get(
                    url,
                    headers=headers,
                    timeout=(s.fhir_connect_timeout, s.fhir_read_timeout),
                    allow_redirects=False,
                    stream=True,
                )
            except requests.Timeout as exc:
                raise FetchError("timeout", "the FHIR server did not answer in time") from exc
            except requests.ConnectionError as exc:
                raise FetchError("connection", "the FHIR server could not be reached") from exc
            except requests.RequestException as exc:
                raise FetchError("error", "the FHIR request failed") from exc
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FetchError(
                        f"http-{response.status_code}", f"the FHIR server answered HTTP {response.status_code}"
                    )
                body = self._read_capped(response, deadline)
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise FetchError("not-json", "the FHIR server's answer was not JSON") from exc
            if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
                raise FetchError("not-fhir", "the FHIR server's answer was not a FHIR resource")
            return data
        raise FetchError("redirect", "the FHIR server redirected too many times")

    def _read_capped(self, response: requests.Response, deadline: float) -> bytes:
        cap = self._settings.fhir_max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FetchError("too-large", "the FHIR server's answer was larger than the configured cap")
        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        try:
            while True:
                # read1: at most one socket read, so the deadline is checked between trickling bytes
                chunk = raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise FetchError("too-large", "the FHIR server's answer was larger than the configured cap")
                if time.monotonic() > deadline:
                    raise FetchError("timeout", DEADLINE_REASON)
                chunks.append(chunk)
        except FetchError:
            raise
        except Exception as exc:  # urllib3 read timeouts and protocol errors surface here
            kind = "timeout" if "timed out" in str(exc).lower() else "connection"
            reason = (
                "the FHIR server did not answer in time" if kind == "timeout" else "the FHIR answer was cut off"
            )
            raise FetchError(kind, reason) from exc
        return b"".join(chunks)

    # ----- reads and searches of prefetch templates -----
    def read(self, relative: str) -> dict[str, Any]:
        return self.get_json(self.url_for(relative))

    def search(
        self, relative: str, *, follow_pages: bool, more: Callable[[Sequence[Mapping[str, Any]]], bool] | None = None
    ) -> SearchResult:
        first = self.get_json(self.url_for(relative))
        return self.continue_search(first, follow_pages=follow_pages, more=more)

    def continue_search(
        self,
        bundle: Mapping[str, Any],
        *,
        follow_pages: bool,
        pages_read: int = 1,
        more: Callable[[Sequence[Mapping[str, Any]]], bool] | None = None,
    ) -> SearchResult:
        """Collect a searchset Bundle's resources, following ``next`` links when asked to: always
        (``follow_pages``), or while ``more`` says the resources read so far are not enough."""
        if bundle.get("resourceType") != "Bundle":
            if bundle.get("resourceType") == "OperationOutcome":
                raise FetchError("operation-outcome", "the FHIR server reported an error")
            raise FetchError("not-fhir", "the FHIR server's answer to a search was not a Bundle")
        resources, errors = bundle_resources(bundle)
        pages = pages_read
        problem: str | None = None
        seen: set[str] = set()
        next_url = next_link(bundle)
        while next_url and (follow_pages or (more is not None and more(resources))):
            if next_url in seen:
                problem = "the FHIR server's paging looped; only the pages before the loop were read"
                break
            if pages >= self._settings.fhir_max_pages:
                problem = f"only the first {pages} pages of results were read"
                break
            if not same_server(next_url, self.base_url):
                problem = "the next page is on another server and was not read"
                break
            seen.add(next_url)
            try:
                page = self.get_json(next_url)
            except FetchError as exc:
                problem = f"a later page could not be read ({exc.reason})"
                break
            if page.get("resourceType") != "Bundle":
                problem = "a later page was not a Bundle"
                break
            found, found_errors = bundle_resources(page)
            resources.extend(found)
            errors += found_errors
            pages += 1
            next_url = next_link(page)
        return SearchResult(tuple(resources), pages, problem, errors)
