"""sandbox layer of ketamine-cds."""
