"""hooks layer of ketamine-cds."""
