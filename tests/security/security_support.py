"""Test helpers: real ES384/RS384 keys generated here, and client JWTs signed with them."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/ketamine-order-sign"


@dataclass
class SigningKey:
    alg: str
    kid: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str, kid: str | None = None) -> SigningKey:
        if alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
            private: Any = ec.generate_private_key(curve)
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(alg=alg, kid=kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", private_key=private)

    @property
    def public_jwk(self) -> dict[str, Any]:
        algo = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk: dict[str, Any] = algo.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        return jwk

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        hdr = {"typ": "JWT", "kid": self.kid}
        hdr.update(headers or {})
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=hdr)


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in keys]}


def claims(now: float, *, iss: str | None = ISS, aud: str | list[str] | None = AUD, lifetime: int = 300,
           **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"iss": iss, "aud": aud, "iat": int(now), "exp": int(now) + lifetime,
                           "jti": str(uuid.uuid4())}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (to build tokens no honest library would sign)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(signature)}"


BASE = "https://cds.example.org"
SIGN_SERVICE = "ketamine-order-sign"


def feedback_body(card_uuid: str = "0f8b1f4c-5b0a-4b3e-9a57-3b7e2f0e1c11") -> dict[str, Any]:
    return {"feedback": [{"card": card_uuid, "outcome": "overridden",
                          "outcomeTimestamp": "2026-11-23T12:00:00Z"}]}


def order_sign_body(patient_id: str = "pat-1", *, prefetch: dict[str, Any] | None = None,
                    fhir_server: str | None = None, access_token: str | None = None) -> dict[str, Any]:
    """A minimal order-sign call with one IV ketamine draft order."""
    order = {
        "resourceType": "MedicationRequest", "id": "ket-1", "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                  "code": "6130", "display": "ketamine"}]},
        "dosageInstruction": [{
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008",
                                  "display": "Intravenous route"}]},
            "doseAndRate": [{"doseQuantity": {"value": 35, "unit": "mg", "system": "http://unitsofmeasure.org",
                                              "code": "mg"}}],
            "timing": {"repeat": {"duration": 40, "durationUnit": "min"}},
        }],
    }
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/doc-1", "patientId": patient_id,
                    "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                    "entry": [{"resource": order}]}},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
    if access_token:
        body["fhirAuthorization"] = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "ketamine-cds"}
    return body


class Clock:
    """A settable clock for the caches that take ``clock=``: ``clock.t += 60`` moves time on."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
