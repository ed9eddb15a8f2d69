"""Ingestion: the contract tables, value parsing, reading each file format, validating and storing.

Files from creditors, vendors and platforms enter the ledger here; the feature store never imports it.
A file goes: ``table_file`` (reading by ``csv_format``, ``excel_format`` or ``parquet_format``, cut
into ``parts``) -> ``validate`` -> ``prepare`` -> ``store``, driven by ``importer.import_file``;
``report`` holds what the import did.
"""
