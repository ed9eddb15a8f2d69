"""Connections to the case ledger, its schema migrations, and one bulk writer at a time.

One engine factory for SQLite and PostgreSQL; Alembic upgrades the schema on first use;
:func:`ledger_write_lock` makes a second import (or migration) of the same ledger wait for the
first instead of failing on a busy database or a key both inserted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from concord.at_rest import make_private
from concord.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    # Pages of 16 KiB instead of 4: a 1,000,000-row import writes, indexes and checkpoints
    # in a third fewer system calls (set only while a new ledger is still empty).
    cursor.execute("PRAGMA page_size=16384")
    # WAL lets readers (the service) work while an import writes; a killed writer's
    # uncommitted pages are discarded on the next open.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """An engine on the configured ledger, its schema brought up to date unless told not to."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        settings.ensure_home()
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite has no decimal type: SQLAlchemy stores Numeric(18, 2) as REAL and reads it
        # back rounded to the scale, which is exact below 10**13 CNY (the importer's bound).
        warnings.filterwarnings("ignore", category=exc.SAWarning, message=".*Decimal objects.*")
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        upgrade(engine)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        # A ledger made before Concord restricted its files may still be readable by others;
        # SQLite gives its -wal and -shm files the database file's mode.
        for suffix in ("", "-wal", "-shm"):
            make_private(Path(url.database + suffix))
    return engine


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration pointing at the packaged migrations and this engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the ledger's migrations up to ``revision`` (one process at a time)."""
    config = alembic_config(engine)
    if revision == "head":
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current == ScriptDirectory.from_config(config).get_current_head():
            return  # nothing to do: no need to wait for a writer that holds the lock
    with ledger_write_lock(engine):
        command.upgrade(config, revision)


_LOCK_KEY = 0x636F6E636F7264  # "concord": the PostgreSQL advisory lock of the ledger's bulk writers


@contextlib.contextmanager
def ledger_write_lock(engine: Engine, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the ledger's writer lock: one import or migration at a time, the others wait.

    SQLite: an exclusive ``flock`` on ``<ledger>.lock`` beside the file (SQLite's own lock would
    make a second writer fail after its busy timeout). PostgreSQL: a session advisory lock
    (two imports of the same rows would otherwise collide on unique keys). Either is released
    when the holder ends, however it ends. ``waiting`` is called once if another holds it.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            yield
            return
        fd = os.open(url.database + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
        return
    with engine.connect() as connection:
        if not connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({_LOCK_KEY})").scalar_one():
            if waiting is not None:
                waiting()
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
        connection.commit()
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
            connection.commit()
