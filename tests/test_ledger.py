"""The ledger's schema: migrations match the models on both backends, and personal data is
stored only as pseudonyms and masks."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from concord.db import make_engine
from concord.ledger import Base
from serving.cli.app import app
from tests.excel_pool import build_pool


def test_migrations_match_the_models(ledger_settings) -> None:
    engine = make_engine(ledger_settings)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent(ledger_settings) -> None:
    make_engine(ledger_settings).dispose()
    engine = make_engine(ledger_settings)
    assert {"cases", "debtors", "events", "import_batches"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_a_new_sqlite_ledger_has_large_pages_and_an_old_one_keeps_its_own(settings, tmp_path) -> None:
    import dataclasses
    import sqlite3

    engine = make_engine(settings)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA page_size").scalar_one() == 16384
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    engine.dispose()
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as connection:
        connection.execute("CREATE TABLE t (x)")  # made at SQLite's default page size
    old_settings = dataclasses.replace(settings, database_url=f"sqlite:///{old}")
    engine = make_engine(old_settings)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA page_size").scalar_one() == 4096
        assert "cases" in inspect(engine).get_table_names()
    engine.dispose()


def test_raw_identifiers_never_reach_the_ledger(ledger_settings, tmp_path) -> None:
    import openpyxl

    pool = build_pool(tmp_path / "pool.xlsx", n=150)
    result = CliRunner().invoke(app, ["import", "cases", str(pool.path), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(pool.path).active
    ids = {str(row[5]).upper() for row in sheet.iter_rows(min_row=2, values_only=True) if row[5]}
    phones = {
        "".join(ch for ch in str(row[6]) if ch.isdigit())[-11:]
        for row in sheet.iter_rows(min_row=2, values_only=True)
        if row[6]
    }
    engine = make_engine(ledger_settings)
    with engine.connect() as connection:
        stored = []
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(text(f"SELECT * FROM {table.name}")):
                stored.extend(str(value).upper() for value in row if value is not None)
    engine.dispose()
    blob = "\n".join(stored)
    assert not [i for i in ids if i in blob]
    assert not [p for p in phones if len(p) == 11 and p in blob]
