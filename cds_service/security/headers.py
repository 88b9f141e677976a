"""Security headers on every response, success or error.

- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` everywhere;
- ``Cache-Control: no-store`` on ``/cds-services`` (patient-specific cards, discovery behind auth), on every
  error response, and on any other response that did not choose its own caching;
- JSON and other non-HTML answers: ``X-Frame-Options: DENY`` and a CSP that allows nothing
  (``default-src 'none'; frame-ancestors 'none'``);
- HTML pages (``/docs/rules``, self-contained): a CSP that allows only the page's inline styles and data:
  images, no scripts (an EHR may show the page in its own frame, so no frame restriction);
- ``Strict-Transport-Security`` when the service is reached over https.
"""

from __future__ import annotations

from flask import Flask, Response, request

from cds_service.config import Settings

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The rule page is self-contained: one inline <style>, no scripts, no external resources.
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
HSTS = "max-age=31536000"


def is_cds_path(path: str) -> bool:
    return path == "/cds-services" or path.startswith("/cds-services/")


def apply_security_headers(response: Response, path: str, *, https: bool) -> Response:
    """Set the headers on ``response`` for a request to ``path``."""
    h = response.headers
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    if is_cds_path(path) or response.status_code >= 400:
        h["Cache-Control"] = "no-store"
        h.pop("Expires", None)
        h.pop("ETag", None)
        h.pop("Last-Modified", None)
    else:
        h.setdefault("Cache-Control", "no-store")
    if response.mimetype == "text/html":
        h.setdefault("Content-Security-Policy", HTML_CSP)
    else:
        h["Content-Security-Policy"] = API_CSP
        h["X-Frame-Options"] = "DENY"
    if https:
        h.setdefault("Strict-Transport-Security", HSTS)
    return response


def install(app: Flask, settings: Settings) -> None:
    """Add the headers to every response of ``app``."""
    public_https = bool(settings.public_base_url and settings.public_base_url.startswith("https://"))

    @app.after_request
    def _security_headers(response: Response) -> Response:
        return apply_security_headers(response, request.path, https=public_https or request.is_secure)
