"""Concord core: settings, the case ledger and pseudonymisation.

This package imports nothing else of ours; every other part of the product builds on it.
"""
