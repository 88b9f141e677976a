"""Proposed fixes, measured without editing the service: ``python -m benchmarks.run --service-app
benchmarks.candidate_fixes:create``. Runs under the same gunicorn options as ``ketamine-cds serve``.

1. ``gc.freeze()`` once the app is built (``benchmarks.serve`` does it after this factory returns):
   the ~110,000 objects of the imports and the app leave the collector's generations, so parsing a
   large body no longer triggers full collections that rescan them. Proposed home:
   ``cds_service/web/serve.py`` ``run.factory`` (``app = create_app(...); gc.freeze(); return app``).
2. One fallback fetch thread per prefetch key: ``cds_service/fhir/prefetch.py`` caps the pool at
   ``MAX_PARALLEL_FETCHES`` (8) while the services declare 9 keys, so a call without prefetch waits for
   two FHIR round trips instead of one.

Delete this module once both are in the service.
"""

from __future__ import annotations

from flask import Flask

import cds_service.fhir.prefetch as prefetch
from cds_service.config import Settings
from cds_service.hooks.catalog import PREFETCH
from cds_service.web.app import create_app


def create() -> Flask:
    prefetch.MAX_PARALLEL_FETCHES = max(prefetch.MAX_PARALLEL_FETCHES, len(PREFETCH))
    return create_app(Settings.from_env())
