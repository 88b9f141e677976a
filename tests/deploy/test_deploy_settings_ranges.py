"""Every number in the environment is range-checked at start: a value that would overflow or misbehave
later (a 400-digit integer, ``nan``, ``inf``, a negative timeout) stops the service with a message naming
the variable, instead of a crash on the first call."""

from __future__ import annotations

import pytest

from cds_service.config import ConfigError, Settings

# (variable, lowest accepted, highest accepted, one below, one above): boundary pairs on both sides
RANGES = [
    ("KETAMINE_CDS_JWT_MAX_LIFETIME", "1", "86400", "0", "86401"),
    ("KETAMINE_CDS_JWT_LEEWAY", "0", "3600", "-1", "3601"),
    ("KETAMINE_CDS_JWKS_CACHE_TTL", "60", "86400", "0", "86401"),
    ("KETAMINE_CDS_FHIR_CONNECT_TIMEOUT", "0.001", "300", "0", "300.5"),
    ("KETAMINE_CDS_FHIR_READ_TIMEOUT", "0.001", "300", "-1", "301"),
    ("KETAMINE_CDS_FHIR_MAX_PAGES", "1", "1000", "0", "1001"),
    ("KETAMINE_CDS_FHIR_MAX_RESPONSE_BYTES", "1024", "1073741824", "1023", "1073741825"),
    ("KETAMINE_CDS_MAX_REQUEST_BYTES", "1024", "1073741824", "1023", "1073741825"),
    ("KETAMINE_CDS_MAX_JSON_DEPTH", "8", "512", "7", "513"),
    ("KETAMINE_CDS_FEEDBACK_RETENTION_DAYS", "0", "36500", "-1", "36501"),
]
FIELDS = {
    "KETAMINE_CDS_JWT_MAX_LIFETIME": "jwt_max_lifetime_seconds",
    "KETAMINE_CDS_JWT_LEEWAY": "jwt_leeway_seconds",
    "KETAMINE_CDS_JWKS_CACHE_TTL": "jwks_cache_ttl_seconds",
    "KETAMINE_CDS_FHIR_CONNECT_TIMEOUT": "fhir_connect_timeout",
    "KETAMINE_CDS_FHIR_READ_TIMEOUT": "fhir_read_timeout",
    "KETAMINE_CDS_FHIR_MAX_PAGES": "fhir_max_pages",
    "KETAMINE_CDS_FHIR_MAX_RESPONSE_BYTES": "fhir_max_response_bytes",
    "KETAMINE_CDS_MAX_REQUEST_BYTES": "max_request_bytes",
    "KETAMINE_CDS_MAX_JSON_DEPTH": "max_json_depth",
    "KETAMINE_CDS_FEEDBACK_RETENTION_DAYS": "feedback_retention_days",
}


def env_for(name: str, value: str) -> dict[str, str]:
    env = {name: value}
    if name == "KETAMINE_CDS_JWKS_CACHE_TTL":  # the refresh interval (default 60) may not exceed the TTL
        env["KETAMINE_CDS_JWKS_MIN_REFRESH_INTERVAL"] = "1"
    return env


@pytest.mark.parametrize(("name", "low", "high", "below", "above"), RANGES)
def test_the_bounds_are_accepted_and_one_step_beyond_is_refused(
    name: str, low: str, high: str, below: str, above: str
) -> None:
    for value in (low, high):
        assert getattr(Settings.from_env(env_for(name, value)), FIELDS[name]) == float(value)
    for value in (below, above):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(env_for(name, value))


@pytest.mark.parametrize("name", [r[0] for r in RANGES])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "9" * 400, "-" + "9" * 400, "ten"])
def test_values_no_computation_could_use_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env_for(name, value))
