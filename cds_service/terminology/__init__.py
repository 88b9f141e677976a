"""Shared codes: the coding type and the code systems that the knowledge base, the record and the order read.

The bottom of the house (above ``config`` only): anything may import it, it imports nothing of the service.
"""
