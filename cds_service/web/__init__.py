"""web layer of ketamine-cds."""
