"""Signing keys shared by the security tests: generated here, one ES384 and one RS384."""

from __future__ import annotations

import pytest

from tests.security.security_support import SigningKey


@pytest.fixture(scope="module")
def k1() -> SigningKey:
    return SigningKey.generate("ES384", kid="k1")


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return SigningKey.generate("ES384", kid="es-1")


@pytest.fixture(scope="module")
def rs_key() -> SigningKey:
    return SigningKey.generate("RS384", kid="rs-1")


@pytest.fixture(params=["ES384", "RS384"])
def key(request: pytest.FixtureRequest, es_key: SigningKey, rs_key: SigningKey) -> SigningKey:
    return es_key if request.param == "ES384" else rs_key
