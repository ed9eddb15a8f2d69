"""Ingestion: the contract tables, value parsing, reading each file format, validating and storing.

Files from creditors, vendors and platforms enter the ledger here; the feature store never imports it.
"""
