"""The draft ketamine/esketamine order, read from the hook context."""
