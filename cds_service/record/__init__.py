"""The patient record: FHIR resources normalised once per request into typed facts the rules read."""
