"""Features: the offline build, the Feast repository, the store, online writes, debtor profiles.

Reads the ledger (never the ingestion code) and serves the same FeatureServices to training and serving.
"""
