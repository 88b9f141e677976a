"""Service settings, read once from the environment. Every variable is documented in the README."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Upper bounds that keep every later computation in range (a byte count, a datetime minus a number of days).
_MAX_BYTES = 1024**3
MAX_RETENTION_DAYS = 36_500  # 100 years: a retention cut-off is always a representable date


class ConfigError(ValueError):
    """A setting is missing or malformed: the service refuses to start and says which."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on/off (got {raw!r})")


def _optional_bool(env: Mapping[str, str], name: str) -> bool | None:
    """on/off, or None when unset (the default lies elsewhere)."""
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else _bool(env, name, True)


def int_setting(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    """A whole number within [minimum, maximum]: a value out of range stops the start, never a later crash."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer (got {raw!r})") from exc
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum} (got {raw.strip()})")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float) -> float:
    """A finite number within [minimum, maximum] (``nan``, ``inf`` and ``1e400`` are refused)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number (got {raw!r})") from exc
    if not minimum <= value <= maximum:  # False for nan
        raise ConfigError(f"{name} must be a number between {minimum:g} and {maximum:g} (got {raw.strip()})")
    return value


def _seconds(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1, maximum: int = 86_400) -> int:
    """A whole number of seconds within [minimum, maximum]."""
    return int_setting(env, name, default, minimum=minimum, maximum=maximum)


def time_zone(name: str, setting: str = "KETAMINE_CDS_LOCAL_TIMEZONE") -> tzinfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Berlin``); ``ConfigError`` naming ``setting`` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{setting} must be an IANA time zone such as UTC or Europe/Berlin (got {name!r})") from exc


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _zone_name(env: Mapping[str, str]) -> str:
    name = (env.get("KETAMINE_CDS_LOCAL_TIMEZONE") or "").strip() or "UTC"
    time_zone(name)  # refuse to start on an unknown zone
    return name


@dataclass(frozen=True)
class Settings:
    """All runtime configuration. Build with ``Settings.from_env()``; tests pass overrides."""

    # security (issue 6)
    auth_enabled: bool = True
    trusted_clients_file: str | None = None
    public_base_url: str | None = None  # e.g. https://cds.example.org (no trailing slash)
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_max_lifetime_seconds: int = 3600
    jwt_leeway_seconds: int = 30
    jwks_cache_ttl_seconds: int = 3600  # a fetched JWK Set is used this long, then fetched again
    jwks_min_refresh_interval_seconds: int = 60  # fewest seconds between two fetches of one JWK Set URL
    # FHIR fallback fetch (issue 2)
    fhir_server_allowlist: tuple[str, ...] = ()
    fhir_connect_timeout: float = 2.0
    fhir_read_timeout: float = 5.0
    fhir_max_pages: int = 10
    fhir_max_response_bytes: int = 20 * 1024 * 1024
    # HTTP edge (issue 2, 9)
    max_request_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 64
    cors_allowed_origins: tuple[str, ...] = ()
    # knowledge base (issue 3)
    rules_config_file: str | None = None
    # patient data (issue 14): a FHIR dateTime with a time but no offset is read in this IANA time zone
    local_timezone: str = "UTC"
    # feedback store (issue 7)
    database_url: str = "sqlite:///ketamine-cds-feedback.sqlite3"
    feedback_retention_days: int = 730
    # observability (issue 8)
    log_level: str = "INFO"
    # patient-view (issue 19): the trd-candidate card on (True) or off (False); None: as the knowledge base says
    # (``patient_view.trd_candidate``, which KETAMINE_CDS_RULES_CONFIG may set)
    patient_view_trd_candidate: bool | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def local_zone(self) -> tzinfo:
        """``local_timezone`` as a tzinfo (``ConfigError`` when a test or caller built Settings with a bad name)."""
        return time_zone(self.local_timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        auth_raw = env.get("KETAMINE_CDS_AUTH", "on")
        jwks_ttl = _seconds(env, "KETAMINE_CDS_JWKS_CACHE_TTL", 3600)
        jwks_refresh = _seconds(env, "KETAMINE_CDS_JWKS_MIN_REFRESH_INTERVAL", 60)
        if jwks_refresh > jwks_ttl:
            raise ConfigError(
                f"KETAMINE_CDS_JWKS_MIN_REFRESH_INTERVAL ({jwks_refresh}) must not exceed "
                f"KETAMINE_CDS_JWKS_CACHE_TTL ({jwks_ttl}): an expired JWK Set could not be fetched again in time"
            )
        return cls(
            auth_enabled=_bool({"KETAMINE_CDS_AUTH": auth_raw}, "KETAMINE_CDS_AUTH", True),
            trusted_clients_file=env.get("KETAMINE_CDS_TRUSTED_CLIENTS") or None,
            public_base_url=(env.get("KETAMINE_CDS_PUBLIC_BASE_URL") or "").rstrip("/") or None,
            jwt_algorithms=_list(env, "KETAMINE_CDS_JWT_ALGORITHMS") or ("ES384", "RS384"),
            jwt_max_lifetime_seconds=_seconds(env, "KETAMINE_CDS_JWT_MAX_LIFETIME", 3600),
            jwt_leeway_seconds=_seconds(env, "KETAMINE_CDS_JWT_LEEWAY", 30, minimum=0, maximum=3600),
            jwks_cache_ttl_seconds=jwks_ttl,
            jwks_min_refresh_interval_seconds=jwks_refresh,
            fhir_server_allowlist=_list(env, "KETAMINE_CDS_FHIR_SERVER_ALLOWLIST"),
            fhir_connect_timeout=_float(env, "KETAMINE_CDS_FHIR_CONNECT_TIMEOUT", 2.0, minimum=0.001, maximum=300),
            fhir_read_timeout=_float(env, "KETAMINE_CDS_FHIR_READ_TIMEOUT", 5.0, minimum=0.001, maximum=300),
            fhir_max_pages=int_setting(env, "KETAMINE_CDS_FHIR_MAX_PAGES", 10, minimum=1, maximum=1000),
            fhir_max_response_bytes=int_setting(env, "KETAMINE_CDS_FHIR_MAX_RESPONSE_BYTES", 20 * 1024 * 1024,
                                                minimum=1024, maximum=_MAX_BYTES),
            max_request_bytes=int_setting(env, "KETAMINE_CDS_MAX_REQUEST_BYTES", 10 * 1024 * 1024,
                                          minimum=1024, maximum=_MAX_BYTES),
            max_json_depth=int_setting(env, "KETAMINE_CDS_MAX_JSON_DEPTH", 64, minimum=8, maximum=512),
            cors_allowed_origins=_list(env, "KETAMINE_CDS_CORS_ORIGINS"),
            rules_config_file=env.get("KETAMINE_CDS_RULES_CONFIG") or None,
            local_timezone=_zone_name(env),
            database_url=env.get("DATABASE_URL") or "sqlite:///ketamine-cds-feedback.sqlite3",
            feedback_retention_days=int_setting(env, "KETAMINE_CDS_FEEDBACK_RETENTION_DAYS", 730,
                                                minimum=0, maximum=MAX_RETENTION_DAYS),
            log_level=env.get("KETAMINE_CDS_LOG_LEVEL", "INFO"),
            patient_view_trd_candidate=_optional_bool(env, "KETAMINE_CDS_PATIENT_VIEW_TRD_CANDIDATE"),
        )

    def knowledge_switches(self) -> dict[str, bool]:
        """Knowledge-base flags these settings set (``knowledge.loader.with_settings`` applies them)."""
        if self.patient_view_trd_candidate is None:
            return {}
        return {"patient_view.trd_candidate": self.patient_view_trd_candidate}
