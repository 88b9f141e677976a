"""A real FHIR server (sekmet-fhir) for the session, and the service under a fixed clock that may read from it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from cds_service.config import Settings
from tests.clock import NOW
from tests.realfeeds.fhir_server import FhirServer, running_sekmet
from tests.sandbox.sandbox_support import FHIR_BASE, frozen_datetime


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    with running_sekmet(tmp_path_factory.mktemp("sekmet")) as server:
        yield server


@pytest.fixture(scope="session")
def library_ids(fhir_server: FhirServer) -> dict[str, str]:
    """Every fixture of the library loaded once, dates rolled to the test clock: fixture name -> Patient id."""
    return fhir_server.load_library(NOW)


@pytest.fixture(scope="module")
def client(fhir_server: FhirServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    """The service, auth off, allowed to read the real server and the mocked one, clock pinned to NOW."""
    from cds_service.web import app as web_app

    db = tmp_path_factory.mktemp("realfeeds") / "feedback.sqlite3"
    settings = Settings(
        auth_enabled=False, fhir_server_allowlist=(fhir_server.base_url, FHIR_BASE), database_url=f"sqlite:///{db}"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(web_app, "datetime", frozen_datetime(NOW))
        yield web_app.create_app(settings).test_client()
