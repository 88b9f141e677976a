"""fhir layer of ketamine-cds."""
