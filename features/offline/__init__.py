"""The offline feature build: the ledger turned into point-in-time parquet, one table per feature view.

``build.py`` orchestrates (reading the ledger, chunks, workers, writing the tables and their
``latest`` companions); ``asof.py`` holds the shared as-of and window machinery; ``schemas.py``
the table schemas and vocabularies; one module per table builds its rows (``contact_repair``,
``repayment_capacity``, ``litigation``, ``case_state``, ``mediator_performance``).
"""
