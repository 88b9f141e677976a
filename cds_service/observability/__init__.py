"""observability layer of ketamine-cds."""
