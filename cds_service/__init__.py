"""ketamine-cds: a CDS Hooks 2.0 service for IV ketamine and intranasal esketamine orders."""

__version__ = "0.1.0"
