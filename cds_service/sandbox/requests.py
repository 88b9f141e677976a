"""CDS Hooks requests built from a fixture bundle and a named order template.

``build_request`` is the one generator: ``fhir_fixtures/build.py`` writes its output as the committed
request files, ``ketamine-cds evaluate`` calls it for a bare bundle, and the manifest test calls it for every
fixture. The request is the one the service of the hook declares (``hooks.catalog.SERVICES``): its context
holds what the service evaluates, and its prefetch is answered from the bundle by ``fhir.memory.MemoryServer``
with the service's own templates, filled by ``fhir.templates.fill``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.fhir.memory import MemoryServer, resources_from_bundle
from cds_service.fhir.templates import fill
from cds_service.hooks.catalog import SERVICES, ServiceDefinition
from cds_service.hooks.subjects import DraftOrders
from cds_service.record.units import LB_AV_KG
from cds_service.sandbox import roller
from cds_service.sandbox.fixtures import fixtures_dir, read_json, require_library

# The hooks whose services evaluate draft orders (each fixture has a request and expected cards for each), and
# every hook served (patient-view: the patient, no order; fixtures that state its cards have its request too).
HOOKS = tuple(sorted(service.hook for service in SERVICES.values() if isinstance(service.subjects, DraftOrders)))
ALL_HOOKS = tuple(sorted(service.hook for service in SERVICES.values()))
PATIENT_VIEW = "patient-view"
SANDBOX_USER = "Practitioner/sandbox-clinician"
SANDBOX_FHIR_BASE = "https://fhir.sandbox.invalid/r4"
_NS = uuid.UUID("6c0f5a9e-2f4b-4d7e-9a51-0b7d3c2e1f00")



def service_for(hook: str) -> ServiceDefinition[Any]:
    """The service of the catalog that answers ``hook`` (``ValueError`` when none does)."""
    for service in SERVICES.values():
        if service.hook == hook:
            return service
    raise ValueError(f"hook must be one of {ALL_HOOKS}, not {hook!r}")


def prefetch_templates(hook: str) -> dict[str, str]:
    """Prefetch key -> template of the service that answers ``hook``."""
    return {key.key: key.template for key in service_for(hook).prefetch}


def service_id(hook: str) -> str:
    """The id of the service that answers ``hook``."""
    return service_for(hook).id


def load_template(name: str, root: str | Path | None = None) -> dict[str, Any]:
    path = require_library(fixtures_dir(root)) / "orders" / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise KeyError(f"no order template {name!r} (known: {', '.join(known)})")
    return read_json(path)


def latest_weight_kg(resources: list[dict[str, Any]]) -> float | None:
    """Latest body weight (29463-7 / 3141-9) in kg, converting g and [lb_av]; None when there is none."""
    best: tuple[str, float] | None = None
    for res in resources:
        if res.get("resourceType") != "Observation" or res.get("status") == "entered-in-error":
            continue
        codes = {c.get("code") for c in (res.get("code") or {}).get("coding") or ()}
        qty = res.get("valueQuantity") or {}
        when = res.get("effectiveDateTime") or ""
        if not codes & {"29463-7", "3141-9"} or "value" not in qty:
            continue
        unit = qty.get("code") or qty.get("unit")
        kg = float(qty["value"]) * {"kg": 1.0, "g": 0.001, "[lb_av]": LB_AV_KG, "lb": LB_AV_KG}.get(str(unit), 1.0)
        if best is None or when > best[0]:
            best = (when, kg)
    return best[1] if best else None


def materialize_order(
    template: Mapping[str, Any],
    *,
    patient_ref: str,
    order_id: str,
    authored_on: str,
    params: Mapping[str, Any] | None = None,
    weight_kg: float | None = None,
) -> dict[str, Any]:
    """The draft MedicationRequest of ``template`` for one patient.

    Template parameters (overridable by ``params``): ``mg_per_kg`` (dose = mg/kg x weight, rounded to 1 mg)
    or ``dose_mg``; ``dose_mg_per_kg`` (dose written in mg/kg); ``rate_mg_per_h`` or
    ``rate_mg_per_kg_per_h``; ``duration_min``;
    ``frequency_per_week``; ``reason`` (a CodeableConcept for ``reasonCode``); ``reason_object`` (the same,
    sent as one object instead of a list, as the CDS Hooks sandbox does).
    """
    p = {**(template.get("parameters") or {}), **(params or {})}
    res = copy.deepcopy(dict(template["resource"]))
    res["id"] = order_id
    res["subject"] = {"reference": patient_ref}
    res["authoredOn"] = authored_on
    dosage = (res.get("dosageInstruction") or [{}])[0]
    dose_rate = (dosage.get("doseAndRate") or [{}])[0]
    if "dose_mg_per_kg" in p:
        dose_rate["doseQuantity"] = _qty(float(p["dose_mg_per_kg"]), "mg/kg")
    elif "dose_mg" in p:
        dose_rate["doseQuantity"] = _qty(float(p["dose_mg"]), "mg")
    elif "mg_per_kg" in p:
        if weight_kg is None:
            raise ValueError(f"template {template.get('name')} needs the patient's weight or a dose_mg parameter")
        dose_rate["doseQuantity"] = _qty(float(round(float(p["mg_per_kg"]) * weight_kg)), "mg")
    if "rate_mg_per_h" in p:
        dose_rate["rateQuantity"] = _qty(float(p["rate_mg_per_h"]), "mg/h")
    elif "rate_mg_per_kg_per_h" in p:
        dose_rate["rateQuantity"] = _qty(float(p["rate_mg_per_kg_per_h"]), "mg/kg/h")
    timing = dosage.setdefault("timing", {}).setdefault("repeat", {})
    if "duration_min" in p:
        timing["duration"] = p["duration_min"]
        timing["durationUnit"] = "min"
    if "frequency_per_week" in p:
        timing.update({"frequency": p["frequency_per_week"], "period": 1, "periodUnit": "wk"})
    if dose_rate:
        dosage["doseAndRate"] = [dose_rate]
    if dosage:
        res["dosageInstruction"] = [dosage]
    if "reason" in p:
        res["reasonCode"] = [p["reason"]]
    if "reason_object" in p:
        res["reasonCode"] = p["reason_object"]
    return res


def _qty(value: float, unit: str) -> dict[str, Any]:
    number: float | int = int(value) if float(value).is_integer() else value
    return {"value": number, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def build_request(
    bundle: Mapping[str, Any],
    template: Mapping[str, Any],
    hook: str,
    *,
    anchor: date,
    params: Mapping[str, Any] | None = None,
    prefetch: bool = True,
    fhir_server: str | None = None,
    name: str = "fixture",
) -> dict[str, Any]:
    """A CDS Hooks request for ``hook`` whose draft order comes from ``template`` (a service that evaluates
    the patient, patient-view, gets no draft order: ``template`` and ``params`` are not used).

    Dates stay relative to ``anchor`` (recorded in the request's ``extension``); roll it with
    ``roller.roll(request, now)`` before sending. ``prefetch=False`` leaves prefetch out, so the service
    must fetch from ``fhir_server``.
    """
    service = service_for(hook)
    resources = resources_from_bundle(bundle)
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None:
        raise ValueError("the bundle has no Patient")
    context: dict[str, Any] = {"userId": SANDBOX_USER, "patientId": patient["id"]}
    if isinstance(service.subjects, DraftOrders):
        order_id = str(uuid.uuid5(_NS, f"{name}/order"))
        order = materialize_order(
            template,
            patient_ref=f"Patient/{patient['id']}",
            order_id=order_id,
            authored_on=f"{anchor.isoformat()}T11:55:00Z",
            params=params,
            weight_kg=latest_weight_kg(resources),
        )
        draft_orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
        context.update(service.subjects.draft_context(draft_orders, [f"MedicationRequest/{order_id}"]))
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid5(_NS, f"{name}/{hook}")),
        "context": context,
    }
    if fhir_server:
        body["fhirServer"] = fhir_server
    if prefetch:
        server = MemoryServer(resources, fhir_server or SANDBOX_FHIR_BASE)
        body["prefetch"] = {key.key: server.query(fill(key.template, context)).body for key in service.prefetch}
    return roller.mark_anchor(body, anchor)
