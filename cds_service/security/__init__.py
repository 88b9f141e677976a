"""security layer of ketamine-cds."""
