"""Serving: every way a person or system talks to Concord.

The ``concord`` command line (``serving.cli``) and the BentoML service.
"""
