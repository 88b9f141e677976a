"""Latency benchmark of the service against a floor app under the same production server."""
