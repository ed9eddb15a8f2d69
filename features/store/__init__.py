"""Concord's Feast feature store: configuration and apply (``config.py``), materialisation into
the online store (``materialisation.py``), and training and serving reads (``retrieval.py``).
"""
