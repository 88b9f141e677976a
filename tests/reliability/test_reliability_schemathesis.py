"""Property-based API fuzzing from openapi.yaml (schemathesis, in-process WSGI), in every phase, bounded for CI.

The four phases run: *examples* (the request examples of openapi.yaml, missing parts filled in),
*coverage* (boundary and just-invalid values derived from each schema keyword), *fuzzing* (random valid and
invalid requests) and *stateful* (sequences that follow the response links of openapi.yaml: a hook call,
then feedback about the card it returned). Every response must have a documented status and a body that
conforms to the documented schema, and never a 500.

Authentication is on, as in production: each request carries a freshly signed ES384 client JWT whose
audience is the endpoint called (schemathesis also sends requests without it, which must get 401).

``date-time`` values are drawn with extra weight at the ends of the calendar (0001-01-01, 9999-12-31) under
any offset: the class of input behind a 500 the suite once missed (``0001-01-01T00:00:00+09:07`` is in year
0 in UTC). Such a value is valid for the schema but has no UTC value, so the service answers 400 naming the
field, which this test asserts instead of the schema-level acceptance check.

Cost: about a minute on a 2-core machine (``MAX_EXAMPLES`` per operation and phase, ``STATEFUL_*``).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cds_service.config import Settings
from cds_service.knowledge.loader import load_knowledge
from cds_service.web.app import create_app

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
BASE = "http://localhost"
ISS = "https://ehr.fuzz.example"
KID = "fuzz-es384"
MAX_EXAMPLES = 40  # fuzzing examples per operation; the examples and coverage phases add their own cases
STATEFUL_EXAMPLES, STATEFUL_STEPS = 15, 4
SEED = 20261123  # derandomized: CI runs the same cases every time

_key = ec.generate_private_key(ec.SECP384R1())
_jwk = ECAlgorithm.to_jwk(_key.public_key(), as_dict=True) | {"kid": KID, "use": "sig"}
_clients = Path(tempfile.mkdtemp()) / "trusted-clients.json"
_clients.write_text(json.dumps({"clients": [{"iss": ISS, "jwks": {"keys": [_jwk]}}]}))

CONFIG = SchemathesisConfig.from_dict({
    "seed": SEED,
    "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
    "phases": {
        "examples": {"enabled": True, "fill-missing": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
    },
})


def _date_times(dates: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """RFC 3339 date-times (section 5.6) on ``dates``, at any time, under any offset."""
    two = st.integers(0, 59).map("{:02d}".format)
    offset = st.just("Z") | st.builds("{}{:02d}:{}".format, st.sampled_from("+-"), st.integers(0, 23), two)
    return st.builds("{}T{:02d}:{}:{}{}".format, dates, st.integers(0, 23), two, two, offset)


# Every date, and one draw in two on the first or last day of the calendar.
CALENDAR_EDGES = ("0001-01-01", "9999-12-31")
schemathesis.openapi.format(
    "date-time", _date_times(st.dates().map(str)) | _date_times(st.sampled_from(CALENDAR_EDGES))
)

schema = schemathesis.openapi.from_path(str(OPENAPI), config=CONFIG)
schema.app = create_app(
    Settings(auth_enabled=True, trusted_clients_file=str(_clients), public_base_url=BASE, database_url="sqlite://"),
    kb=load_knowledge(),
)


def _token(audience: str) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, _key, algorithm="ES384", headers={"typ": "JWT", "kid": KID})


def _headers(case: schemathesis.Case) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(BASE + case.formatted_path)}"}


# order-select's `selections` must name entries of `draftOrders`: a cross-field rule JSON Schema cannot
# express, so a schema-valid body can rightly get 400 there. Every other check still runs on it.
CROSS_FIELD_RULES = {"callOrderSelect"}
# patient-view judges the patient of every call, so a schema-valid body without the required prefetch keys and no
# allowlisted FHIR server to read them from rightly gets 412 (an order call for another drug needs no data).
CROSS_FIELD_RULES |= {"callPatientView"}


def _has_no_utc_value(stamp: Any) -> bool:
    """A date-time string that the schema admits but no UTC instant in years 1-9999 matches."""
    try:
        datetime.fromisoformat(str(stamp).replace("z", "Z").replace("t", "T", 1)).astimezone(UTC)
    except OverflowError:
        return True
    except ValueError:
        return False
    return False


def _timestamps_without_utc_value(case: schemathesis.Case) -> list[int]:
    if case.operation.definition.raw.get("operationId") != "feedback" or not isinstance(case.body, dict):
        return []
    items = case.body.get("feedback")
    return [i for i, item in enumerate(items if isinstance(items, list) else [])
            if isinstance(item, dict) and _has_no_utc_value(item.get("outcomeTimestamp"))]


def _excluded_checks(case: schemathesis.Case) -> list[Any]:
    cross_field = case.operation.definition.raw.get("operationId") in CROSS_FIELD_RULES
    return [positive_data_acceptance] if cross_field or _timestamps_without_utc_value(case) else []


def _expect_a_named_400_for_timestamps_without_utc_value(case: schemathesis.Case, response: Any) -> None:
    """Schema-valid, yet no instant: 400 naming the field (a 500 fails the server-error check first)."""
    unusable = _timestamps_without_utc_value(case)
    if not unusable or response.status_code == 401:
        return
    assert response.status_code == 400, (response.status_code, case.body)
    named = {e for issue in response.json()["issue"] for e in issue.get("expression", [])}
    assert any(f"feedback[{i}].outcomeTimestamp" in named for i in unusable), named


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_openapi(case: schemathesis.Case) -> None:
    response = case.call_and_validate(headers=_headers(case), excluded_checks=_excluded_checks(case))
    _expect_a_named_400_for_timestamps_without_utc_value(case, response)


class Workflows(schema.as_state_machine()):  # type: ignore[misc]
    """Hook calls followed by feedback about the card they returned (the links in openapi.yaml)."""

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"headers": _headers(case)}

    def validate_response(self, response: Any, case: schemathesis.Case,
                          additional_checks: Any = None, **kwargs: Any) -> None:
        case.validate_response(response, additional_checks=additional_checks,
                               excluded_checks=_excluded_checks(case), headers=kwargs.get("headers"))
        _expect_a_named_400_for_timestamps_without_utc_value(case, response)


def test_stateful_workflows_conform_to_openapi() -> None:
    Workflows.run(settings=settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    ))
