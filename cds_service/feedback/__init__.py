"""feedback layer of ketamine-cds."""
