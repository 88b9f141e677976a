"""cards layer of ketamine-cds."""
