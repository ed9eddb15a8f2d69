"""What keeps a service worker's slow requests rare: WAL checkpoints out of the commits (SQLite),
one queue for the writers of a SQLite store across processes, and connections spread over the
workers (measured with ``serving.probe``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

from sqlalchemy import text

from concord.audit import append as audit_append
from concord.audit import audit_engine, records, transaction, verify
from concord.db import BACKSTOP_PAGES, Checkpointer, make_engine, write_turn
from serving.spread import Spread
from tests.service_world import ROOT


def _wal_pages(engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_a_sqlite_store_checkpoints_in_its_own_thread_and_keeps_every_commit(settings):
    engine = audit_engine(settings)
    assert _wal_pages(engine) == 1000  # SQLite's default: the commit that passes it checkpoints
    checkpointer = Checkpointer.start_for(engine, interval=3600)  # rounds by hand below
    assert checkpointer is not None
    try:
        assert _wal_pages(engine) == BACKSTOP_PAGES  # the pooled connections were replaced too
        for i in range(40):
            with transaction(engine) as connection:
                audit_append(connection, "event", {"i": i, "pad": "x" * 20_000})
        busy, frames, copied = checkpointer.checkpoint()
        assert busy == 0 and frames > 0 and copied == frames  # nobody reading: the whole WAL copied
        assert checkpointer.checkpoint()[2] == frames  # nothing new: the same frames, already copied
        with transaction(engine) as connection:  # the next writer restarts the WAL
            audit_append(connection, "event", {"i": 40})
    finally:
        checkpointer.stop()
    engine.dispose()
    fresh = audit_engine(settings, migrate=False)
    assert verify(fresh).count == 41
    fresh.dispose()


def test_the_thread_checkpoints_on_its_own(settings):
    engine = audit_engine(settings)
    checkpointer = Checkpointer.start_for(engine, interval=0.05)
    assert checkpointer is not None
    try:
        with transaction(engine) as connection:
            audit_append(connection, "event", {"i": 1})
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints >= 2
    finally:
        checkpointer.stop()
    assert not checkpointer._thread.is_alive()
    engine.dispose()


def test_no_checkpointer_where_none_is_needed(settings, postgres_url):
    memory = make_engine(
        settings.__class__.from_env({"CONCORD_HOME": str(settings.home), "CONCORD_DATABASE_URL": "sqlite://"}),
        migrate=False,
    )
    assert Checkpointer.start_for(memory) is None
    postgres = make_engine(
        settings.__class__.from_env({"CONCORD_HOME": str(settings.home), "CONCORD_DATABASE_URL": postgres_url}),
        migrate=False,
    )
    assert Checkpointer.start_for(postgres) is None
    with write_turn(postgres):  # nothing to queue for: PostgreSQL has its advisory lock
        pass
    postgres.dispose()


_HOLDER = textwrap.dedent("""
    import sys, time
    from concord import audit
    from concord.db import write_turn
    from concord.settings import get_settings

    engine = audit.audit_engine(get_settings(), migrate=False)
    with write_turn(engine):
        print("holding", flush=True)
        time.sleep(float(sys.argv[1]))
""")


def test_a_writer_waits_for_the_other_process_turn_then_writes(settings):
    engine = audit_engine(settings)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, "1.0"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with transaction(engine) as connection:
            waited = time.monotonic() - started
            audit_append(connection, "event", {"after": "the other process"})
        assert waited > 0.5
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0, holder.stderr.read() if holder.stderr else ""
    assert [r.payload for r in records(engine)] == [{"after": "the other process"}]
    engine.dispose()


def _answers(spread: Spread, concurrent: int) -> list[list[tuple[bytes, bytes]]]:
    """The response headers of ``concurrent`` requests that are in flight together."""
    gate = asyncio.Event()
    arrived = 0

    async def app(scope, receive, send) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == concurrent:
            gate.set()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    spread.app = app
    out: list[list[tuple[bytes, bytes]]] = []

    async def one() -> None:
        headers: list[tuple[bytes, bytes]] = []

        async def send(message) -> None:
            if message["type"] == "http.response.start":
                headers.extend(message["headers"])

        await spread({"type": "http", "path": "/next_best_action"}, None, send)
        out.append(headers)

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(concurrent)))

    asyncio.run(main())
    return out


def test_a_busy_worker_closes_some_connections_and_an_idle_one_none():
    spread = Spread(None, every=4)
    alone = [h for _ in range(12) for h in _answers(spread, 1)]
    assert not any((b"connection", b"close") in h for h in alone)
    crowded = _answers(spread, 12)  # 11 arrive while another is in flight: every 4th of them closes
    assert sum((b"connection", b"close") in h for h in crowded) == 2
    assert all((b"content-type", b"text/plain") in h for h in crowded)
    assert spread.in_flight == 0


def test_sqlite_store_reads_back_after_the_wal_is_checkpointed_and_removed(settings):
    """What a restart sees: every committed record, from the database file once checkpointed."""
    engine = audit_engine(settings)
    checkpointer = Checkpointer.start_for(engine, interval=3600)
    assert checkpointer is not None
    for i in range(5):
        with transaction(engine) as connection:
            audit_append(connection, "event", {"i": i})
    checkpointer.stop()
    engine.dispose()  # the last connection closes: SQLite checkpoints and removes the WAL
    fresh = audit_engine(settings, migrate=False)
    with fresh.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_records")).scalar_one() == 5
    fresh.dispose()
