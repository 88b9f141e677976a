"""Clinical rules: pure functions of (record, order, knowledge, now) that return findings."""
