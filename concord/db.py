"""Connections to the case ledger, its schema migrations, and one bulk writer at a time.

One engine factory for SQLite and PostgreSQL; Alembic upgrades the schema on first use;
:func:`ledger_write_lock` makes a second import (or migration) of the same ledger wait for the
first instead of failing on a busy database or a key both inserted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from concord.at_rest import make_private
from concord.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("concord.db")


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


# A service's commits never checkpoint: its own thread does it (:class:`Checkpointer`). Should that
# thread stop, a commit checkpoints once the WAL holds this many pages (64 MiB at 16 KiB pages).
BACKSTOP_PAGES = 4000


class Checkpointer:
    """Copies a SQLite database's WAL into the database file from a thread of its own.

    SQLite's automatic checkpoint runs inside the commit that takes the WAL over 1,000 pages: a
    copy of up to 16 MiB and two fsyncs charged to one request (18 ms and more on a busy machine;
    the other requests of its worker wait behind it). Here the engine's connections checkpoint only
    past :data:`BACKSTOP_PAGES`, and a daemon thread runs a PASSIVE checkpoint every ``interval``
    seconds: it copies what no reader still needs, never waits for a lock, and blocks no writer.
    A commit stays durable when it returns (WAL): a crash after it loses nothing, checkpointed or
    not. ``span(name)``, when given, is a context manager timing each checkpoint (the service's probe).
    """

    def __init__(
        self,
        engine: Engine,
        interval: float = 1.0,
        span: Callable[[str], contextlib.AbstractContextManager[object]] | None = None,
    ) -> None:
        self.path = engine.url.database or ""
        self.interval = interval
        self.span = span
        self.checkpoints = 0
        self._stop = threading.Event()
        event.listen(engine, "connect", _backstop)
        engine.dispose()  # connections opened before (the schema check) get the setting too
        self._thread = threading.Thread(
            target=self._run, name=f"concord-checkpoint-{Path(self.path).name}", daemon=True
        )

    @classmethod
    def start_for(cls, engine: Engine, **options: Any) -> Checkpointer | None:
        """A running checkpointer for ``engine`` when it is a SQLite file, else None (PostgreSQL
        needs none)."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        checkpointer = cls(engine, **options)
        checkpointer._thread.start()
        return checkpointer

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: (busy, frames in the WAL, frames copied)."""
        connection = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        self.checkpoints += 1
        return int(row[0]), int(row[1]), int(row[2])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.span(f"checkpoint {Path(self.path).name}") if self.span else contextlib.nullcontext():
                    self.checkpoint()
            except sqlite3.Error as error:  # busy, or the file is away: the next round tries again
                log.debug("checkpoint of %s not done: %s", self.path, error)

    def stop(self) -> None:
        """Stop the thread (a last checkpoint is left to the next writer or opener)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _backstop(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
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


_TURNS: dict[str, int] = {}  # SQLite file -> this process's descriptor of its writers' queue
_TURNS_GUARD = threading.Lock()


@contextlib.contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """Wait for this process's turn to write ``engine``'s SQLite file: an exclusive ``flock`` on
    ``<file>.writers``, held for one write transaction (nothing to do on other databases).

    SQLite's own lock makes a second process's writer retry after sleeps of 1, 2, 5, 10, 15, 20 ...
    ms: a lock held 2 ms by the other worker cost 8 ms or 18 ms. Waiting on the flock, the
    writer wakes when it is released. Callers serialise their own threads first (one descriptor
    per process, and threads sharing it do not exclude one another)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    with _TURNS_GUARD:
        fd = _TURNS.get(url.database)
        if fd is None:
            fd = _TURNS[url.database] = os.open(url.database + ".writers", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


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
