"""Resource builders for the fixture specs in ``build.py``: one function per kind of clinical fact.

Every date is given as "days before the anchor" (``ANCHOR`` = 2026-01-01, the manifest's anchor); the
roller shifts them to the evaluation date when a fixture is loaded. Codes come only from verified rows of
``terminology.md`` (section numbers in the comments).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

ANCHOR = date(2026, 1, 1)
NS = uuid.UUID("0b0e8f0e-4c55-4d0b-8a3e-6f1e2c9d7a11")

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ANCHOR_TAG = "urn:ketamine-cds:fixture-anchor"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

# Medications: (system, code, display). terminology.md §1a (ingredients), §1b (SCD products), §2, §9.6.
DRUGS: dict[str, tuple[str, str, str]] = {
    "sertraline-100": (RXNORM, "312938", "sertraline 100 MG Oral Tablet"),
    "sertraline-50": (RXNORM, "312941", "sertraline 50 MG Oral Tablet"),
    "sertraline-25": (RXNORM, "312940", "sertraline 25 MG Oral Tablet"),
    "escitalopram-20": (RXNORM, "351250", "escitalopram 20 MG Oral Tablet"),
    "escitalopram-10": (RXNORM, "349332", "escitalopram 10 MG Oral Tablet"),
    "citalopram-20": (RXNORM, "200371", "citalopram 20 MG Oral Tablet"),
    "fluoxetine-20": (RXNORM, "310385", "fluoxetine 20 MG Oral Capsule"),
    "venlafaxine-xr-150": (RXNORM, "313581", "24 HR venlafaxine 150 MG Extended Release Oral Capsule"),
    "venlafaxine-xr-37.5": (RXNORM, "313583", "24 HR venlafaxine 37.5 MG Extended Release Oral Capsule"),
    "duloxetine-60": (RXNORM, "596934", "duloxetine 60 MG Delayed Release Oral Capsule"),
    "bupropion-xl-300": (RXNORM, "993557", "24 HR bupropion hydrochloride 300 MG Extended Release Oral Tablet"),
    "mirtazapine-30": (RXNORM, "314111", "mirtazapine 30 MG Oral Tablet"),
    "mirtazapine-15": (RXNORM, "311725", "mirtazapine 15 MG Oral Tablet"),
    "nortriptyline-25": (RXNORM, "317136", "nortriptyline 25 MG Oral Capsule"),
    "sertraline-ingredient": (RXNORM, "36437", "sertraline"),
    "lithium-300": (RXNORM, "197890", "lithium carbonate 300 MG Oral Tablet"),
    "divalproex-er-500": (RXNORM, "1099569", "24 HR divalproex sodium 500 MG Extended Release Oral Tablet"),
    "lamotrigine-200": (RXNORM, "198429", "lamotrigine 200 MG Oral Tablet"),
    "ketamine": (RXNORM, "6130", "ketamine"),
    "esketamine-spravato": (RXNORM, "2201625", "esketamine Nasal Spray [Spravato]"),
}

# Conditions: (system, code, display). terminology.md §3b (ICD-10-CM), §3c/§9.7 (SNOMED), §9.1.
CONDITIONS: dict[str, tuple[str, str, str]] = {
    "mdd-recurrent-severe": (ICD10, "F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
    "mdd-recurrent-psychotic": (ICD10, "F33.3", "Major depressive disorder, recurrent, severe with psychotic symptoms"),
    "mdd-snomed": (SNOMED, "370143000", "Major depressive disorder (disorder)"),
    "bipolar-depressed-severe": (
        ICD10,
        "F31.4",
        "Bipolar disorder, current episode depressed, severe, without psychotic features",
    ),
    "bipolar-ii": (SNOMED, "83225003", "Bipolar II disorder (disorder)"),
    "schizophrenia": (ICD10, "F20.9", "Schizophrenia, unspecified"),
    "brief-psychotic": (ICD10, "F23", "Brief psychotic disorder"),
    "ketamine-dependence": (SNOMED, "724715004", "Ketamine dependence (disorder)"),
    "alcohol-dependence": (ICD10, "F10.20", "Alcohol dependence, uncomplicated"),
    "alcohol-abuse": (ICD10, "F10.10", "Alcohol abuse, uncomplicated"),
    "heart-failure": (ICD10, "I50.9", "Heart failure, unspecified"),
    "essential-hypertension": (ICD10, "I10", "Essential (primary) hypertension"),
    "hypertensive-urgency": (ICD10, "I16.0", "Hypertensive urgency"),
    "cirrhosis": (ICD10, "K74.60", "Unspecified cirrhosis of liver"),
    "hydrocephalus": (ICD10, "G91.9", "Hydrocephalus, unspecified"),
    "glaucoma-open-angle": (ICD10, "H40.10X0", "Unspecified open-angle glaucoma, stage unspecified"),
    "pregnancy": (ICD10, "Z33.1", "Pregnant state, incidental"),
    "ptsd-chronic": (ICD10, "F43.12", "Post-traumatic stress disorder, chronic"),
    "crps-right-upper": (ICD10, "G90.511", "Complex regional pain syndrome I of right upper limb"),
    "fibromyalgia": (ICD10, "M79.7", "Fibromyalgia"),
    "suicidal-ideation": (ICD10, "R45.851", "Suicidal ideations"),
    "hallucinogen-dependence": (ICD10, "F16.20", "Hallucinogen dependence, uncomplicated"),
}

# --- rules-v2 (clinical-rules.md v2 §0-§3): codes from verified rows of terminology.md or named by the catalogue
DRUGS.update(
    {
        "phenelzine-15": (RXNORM, "312347", "phenelzine 15 MG Oral Tablet"),
        "quetiapine-200": (RXNORM, "317174", "quetiapine 200 MG Oral Tablet"),
    }
)
CONDITIONS.update(
    {
        "nstemi": (ICD10, "I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
        "intracerebral-hemorrhage": (ICD10, "I61.9", "Nontraumatic intracerebral hemorrhage, unspecified"),
        "angina-unspecified": (ICD10, "I20.9", "Angina pectoris, unspecified"),
        "bipolar-manic": (
            ICD10,
            "F31.10",
            "Bipolar disorder, current episode manic without psychotic features, unspecified",
        ),
        "bipolar-remission-depressed": (
            ICD10,
            "F31.76",
            "Bipolar disorder, in full remission, most recent episode depressed",
        ),
        "cyclothymia": (ICD10, "F34.0", "Cyclothymic disorder"),
        "alcoholic-cirrhosis-ascites": (ICD10, "K70.31", "Alcoholic cirrhosis of liver with ascites"),
        "meningioma": (ICD10, "D32.9", "Benign neoplasm of meninges, unspecified"),
        "normal-pressure-hydrocephalus": (ICD10, "G91.2", "(Idiopathic) normal pressure hydrocephalus"),
        "interstitial-cystitis": (ICD10, "N30.10", "Interstitial cystitis (chronic) without hematuria"),
        "lactating-mother": (ICD10, "Z39.1", "Encounter for care and examination of lactating mother"),
        "nicotine-dependence": (ICD10, "F17.210", "Nicotine dependence, cigarettes, uncomplicated"),
        "alcohol-dependence-remission": (ICD10, "F10.21", "Alcohol dependence, in remission"),
        "ketamine-use-disorder": (ICD10, "F19.20", "Other psychoactive substance dependence, uncomplicated"),
        "supervision-pregnancy": (
            ICD10,
            "Z34.90",
            "Encounter for supervision of normal pregnancy, unspecified, unspecified trimester",
        ),
        "single-live-birth": (ICD10, "Z37.0", "Single live birth"),
    }
)
# --- end rules-v2

ROUTE_IV = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route (qualifier value)"}]}
ROUTE_ORAL = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral use"}]}
ROUTE_NASAL = {"coding": [{"system": SNOMED, "code": "46713006", "display": "Nasal route (qualifier value)"}]}


# Observation codes: terminology.md §4.
BP_PANEL = (LOINC, "85354-9", "Blood pressure panel with all children optional")
BP_LEGACY = (LOINC, "55284-4", "Blood Pressure")
SYSTOLIC = (LOINC, "8480-6", "Systolic blood pressure")
DIASTOLIC = (LOINC, "8462-4", "Diastolic Blood Pressure")


def _loinc(code: tuple[str, str, str]) -> dict[str, str]:
    return {"system": code[0], "code": code[1], "display": code[2]}


def day(days_before: float, time: str | None = "09:30:00", zone: str = "-05:00") -> str:
    """The date ``days_before`` the anchor: a dateTime with zone, or a date when ``time`` is None."""
    d = ANCHOR - timedelta(days=days_before)
    return d.isoformat() if time is None else f"{d.isoformat()}T{time}{zone}"


def coding(key: tuple[str, str, str]) -> dict[str, Any]:
    system, code, display = key
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def qty(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


@dataclass
class Chart:
    """One synthetic patient's record, built up fact by fact and written as a transaction Bundle."""

    name: str
    resources: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (fullUrl, resource)

    def _url(self, kind: str) -> str:
        return f"urn:uuid:{uuid.uuid5(NS, f'{self.name}/{kind}/{len(self.resources)}')}"

    def add(self, resource: dict[str, Any]) -> str:
        url = self._url(resource["resourceType"])
        self.resources.append((url, resource))
        return url

    @property
    def patient_ref(self) -> dict[str, str]:
        return {"reference": self.resources[0][0]}

    # --- demographics -------------------------------------------------------------------------------------
    def patient(self, given: str, family: str, gender: str, birth: date) -> Chart:
        assert not self.resources, "the Patient comes first"
        self.add(
            {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:ketamine-cds:fixture", "value": self.name}],
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth.isoformat(),
            }
        )
        return self

    # --- problem list -------------------------------------------------------------------------------------
    def condition(
        self,
        key: str,
        *,
        onset: float | None,
        clinical: str = "active",
        verification: str | None = "confirmed",
        abated: float | None = None,
        text: str | None = None,
    ) -> Chart:
        """A problem-list Condition; ``onset=None`` leaves it undated, ``text`` replaces ``code.text``."""
        code = coding(CONDITIONS[key])
        if text is not None:
            code["text"] = text
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "category": [{"coding": [{"system": COND_CATEGORY, "code": "problem-list-item"}]}],
            "code": code,
            "subject": self.patient_ref,
        }
        if onset is not None:
            res["onsetDateTime"] = day(onset)
            res["recordedDate"] = day(onset - 1)
        if verification != "entered-in-error":  # FHIR con-5: no clinicalStatus on an entered-in-error Condition
            status = {"clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]}}
            res = {"resourceType": "Condition", **status, **res}
        if verification is not None:
            res["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": verification}]}
        if abated is not None:
            res["abatementDateTime"] = day(abated)
        self.add(res)
        return self

    # --- medications --------------------------------------------------------------------------------------
    def _dosage(self, dose_mg: float | None, per_day: int = 1) -> list[dict[str, Any]]:
        dosage: dict[str, Any] = {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "route": ROUTE_ORAL,
        }
        if dose_mg is not None:
            dosage["text"] = f"{dose_mg:g} mg by mouth {'once' if per_day == 1 else f'{per_day} times'} daily"
            dosage["doseAndRate"] = [{"doseQuantity": qty(dose_mg, "mg")}]
        return [dosage]

    def statement(
        self,
        drug: str,
        dose_mg: float | None,
        *,
        start: float,
        end: float | None = None,
        contained: bool = False,
        concept: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> Chart:
        """A MedicationStatement: taken from ``start`` to ``end`` days before the anchor (None = ongoing).

        ``concept`` replaces the coded drug (e.g. a local code whose only usable part is the name)."""
        period: dict[str, str] = {"start": day(start, None)}
        if end is not None:
            period["end"] = day(end, None)
        res: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "status": status or ("active" if end is None else "completed"),
            "subject": self.patient_ref,
            "effectivePeriod": period,
            "dateAsserted": day(start - 1 if end is None else end),
            "dosage": self._dosage(dose_mg),
        }
        if contained:
            res["contained"] = [{"resourceType": "Medication", "id": "med", "code": coding(DRUGS[drug])}]
            res["medicationReference"] = {"reference": "#med"}
        else:
            res["medicationCodeableConcept"] = concept or coding(DRUGS[drug])
        self.add(res)
        return self

    def medication(self, drug: str) -> str:
        """A standalone Medication resource (for ``medicationReference``); returns its fullUrl."""
        return self.add({"resourceType": "Medication", "code": coding(DRUGS[drug])})

    def prescriptions(
        self,
        drug: str,
        dose_mg: float | None,
        *,
        start: float,
        end: float | None = None,
        refill_days: int = 30,
        reference: str | None = None,
    ) -> Chart:
        """MedicationRequest history only (no statements): one order per ``refill_days`` supply.

        The last order of an ongoing course is ``active`` with a validity period covering the anchor.
        ``reference`` makes every order use ``medicationReference`` to that Medication.
        """
        t = start
        stop = end if end is not None else 0
        while t > stop:
            length = min(refill_days, t - stop) if end is not None else refill_days
            ongoing = end is None and t - refill_days <= 0
            res: dict[str, Any] = {
                "resourceType": "MedicationRequest",
                "status": "active" if ongoing else "completed",
                "intent": "order",
                "subject": self.patient_ref,
                "authoredOn": day(t, "10:15:00"),
                "dosageInstruction": self._dosage(dose_mg),
                "dispenseRequest": {
                    "validityPeriod": {"start": day(t, None), "end": day(t - length, None)},
                    "expectedSupplyDuration": {"value": length, "unit": "days", "system": UCUM, "code": "d"},
                    "quantity": {"value": length, "unit": "tablet"},
                },
            }
            if reference:
                res["medicationReference"] = {"reference": reference}
            else:
                res["medicationCodeableConcept"] = coding(DRUGS[drug])
            self.add(res)
            t -= refill_days
        return self

    def administration(
        self, days_before: float, dose_mg: float, *, status: str = "completed", drug: str = "ketamine"
    ) -> Chart:
        """A ketamine infusion over 40 minutes, or with ``drug="esketamine"`` a Spravato session."""
        if drug == "esketamine":
            med, text, route, end = DRUGS["esketamine-spravato"], f"{dose_mg:g} mg intranasal", ROUTE_NASAL, "10:05:00"
        else:
            med, text, route, end = DRUGS["ketamine"], f"{dose_mg:g} mg IV over 40 minutes", ROUTE_IV, "10:40:00"
        self.add(
            {
                "resourceType": "MedicationAdministration",
                "status": status,
                "medicationCodeableConcept": coding(med),
                "subject": self.patient_ref,
                "effectivePeriod": {"start": day(days_before, "10:00:00"), "end": day(days_before, end)},
                "dosage": {"text": text, "route": route, "dose": qty(dose_mg, "mg")},
            }
        )
        return self

    # --- observations -------------------------------------------------------------------------------------
    def _obs(self, category: str, code: tuple[str, str, str], when: float, **values: Any) -> dict[str, Any]:
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "status": values.pop("status", "final"),
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
            "code": {"coding": [{"system": code[0], "code": code[1], "display": code[2]}]},
            "subject": self.patient_ref,
            "effectiveDateTime": day(when, values.pop("time", "09:30:00")),
        }
        res.update(values)
        return res

    def bp(self, when: float, systolic: int, diastolic: int, *, legacy: bool = False, status: str = "final") -> Chart:
        panel = BP_LEGACY if legacy else BP_PANEL
        comps = [
            {"code": {"coding": [_loinc(SYSTOLIC)]}, "valueQuantity": qty(systolic, "mm[Hg]")},
            {"code": {"coding": [_loinc(DIASTOLIC)]}, "valueQuantity": qty(diastolic, "mm[Hg]")},
        ]
        self.add(self._obs("vital-signs", panel, when, component=comps, status=status))
        return self

    def bp_separate(self, when: float, systolic: int, diastolic: int) -> Chart:
        self.add(self._obs("vital-signs", SYSTOLIC, when, valueQuantity=qty(systolic, "mm[Hg]")))
        self.add(self._obs("vital-signs", DIASTOLIC, when, valueQuantity=qty(diastolic, "mm[Hg]")))
        return self

    def weight(self, when: float, value: float, unit: str = "kg") -> Chart:
        self.add(self._obs("vital-signs", (LOINC, "29463-7", "Body weight"), when, valueQuantity=qty(value, unit)))
        return self

    def phq9(self, when: float, score: int, *, integer: bool = False) -> Chart:
        value: dict[str, Any] = {"valueInteger": score} if integer else {"valueQuantity": qty(score, "{score}")}
        code = (LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]")
        self.add(self._obs("survey", code, when, **value))
        return self

    def named_score(self, when: float, text: str, score: int, local_code: str) -> Chart:
        """A rating-scale total with only a local code and the instrument's name (MADRS, HAM-D: no LOINC)."""
        res = self._obs("survey", ("urn:oid:2.16.840.1.113883.3.9999.42", local_code, text), when, valueInteger=score)
        res["code"]["text"] = text
        self.add(res)
        return self

    def hcg(self, when: float, positive: bool) -> Chart:
        result = ("10828004", "Positive (qualifier value)") if positive else ("260385009", "Negative (qualifier value)")
        interp = ("POS", "Positive") if positive else ("NEG", "Negative")
        self.add(
            self._obs(
                "laboratory",
                (LOINC, "2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine"),
                when,
                valueCodeableConcept={"coding": [{"system": SNOMED, "code": result[0], "display": result[1]}]},
                interpretation=[{"coding": [{"system": INTERPRETATION, "code": interp[0], "display": interp[1]}]}],
            )
        )
        return self

    # --- rules-v2: allergies, breastfeeding, named medicines -------------------------------------------------
    def allergy(
        self,
        drug: str,
        *,
        recorded: float,
        kind: str | None = "allergy",
        reactions: tuple[str, ...] = (),
        verification: str = "confirmed",
    ) -> Chart:
        """An AllergyIntolerance to ``drug`` (a DRUGS key), with reactions as manifestation texts."""
        res: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": verification}]},
            "code": coding(DRUGS[drug]),
            "patient": self.patient_ref,
            "recordedDate": day(recorded),
        }
        if verification == "refuted":
            res["clinicalStatus"] = {"coding": [{"system": ALLERGY_CLINICAL, "code": "inactive"}]}
        if kind is not None:
            res["type"] = kind
        if reactions:
            res["reaction"] = [{"manifestation": [{"text": r} for r in reactions]}]
        self.add(res)
        return self

    def hcg_quantitative(self, when: float, value: float, unit: str, comparator: str | None = None) -> Chart:
        """A serum quantitative hCG (LOINC 19080-1) in ``unit`` as a UCUM code, optionally with a comparator."""
        quantity = {"value": value, "unit": unit, "system": UCUM, "code": unit}
        if comparator:
            quantity["comparator"] = comparator
        code = (LOINC, "19080-1", "Choriogonadotropin [Units/volume] in Serum or Plasma")
        self.add(self._obs("laboratory", code, when, valueQuantity=quantity))
        return self

    def breastfeeding(self, when: float, answer: str) -> Chart:
        """A social-history Observation "Breastfeeding status" (no verified LOINC code: recognised by words)."""
        local = ("urn:oid:2.16.840.1.113883.3.9999.42", "BF-STATUS", "Breastfeeding status")
        res = self._obs("social-history", local, when)
        res["code"]["text"] = "Breastfeeding status"
        res["valueCodeableConcept"] = {"text": answer}
        self.add(res)
        return self

    def named_medicine(self, name: str, dose_mg: float, *, start: float, end: float | None = None) -> Chart:
        """A MedicationStatement whose drug has a local code and its name only (recognised by name)."""
        local = {"system": "urn:oid:2.16.840.1.113883.3.9999.7", "code": name.upper()[:8], "display": name}
        concept = {"coding": [local], "text": name}
        return self.statement("sertraline-50", dose_mg, start=start, end=end, concept=concept)

    def ect(self, days_before: float, *, status: str = "completed") -> Chart:
        """An electroconvulsive therapy session: a Procedure under a clinic's local code, recognised by its words."""
        local = {"system": "urn:oid:2.16.840.1.113883.3.9999.9", "code": "ECT-BILAT", "display": "ECT, bilateral"}
        self.add(
            {
                "resourceType": "Procedure",
                "status": status,
                "code": {"coding": [local], "text": "Electroconvulsive therapy, bilateral"},
                "subject": self.patient_ref,
                "performedDateTime": day(days_before, "08:00:00"),
            }
        )
        return self

    # --- output -------------------------------------------------------------------------------------------
    def bundle(self) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "meta": {"tag": [{"system": ANCHOR_TAG, "code": ANCHOR.isoformat(), "display": "fixture date anchor"}]},
            "type": "transaction",
            "entry": [
                {"fullUrl": url, "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
                for url, res in self.resources
            ],
        }
