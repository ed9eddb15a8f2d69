"""``concord import``: one contract file into the case ledger, every row accounted for
(:func:`import_file`): worker processes read and prepare its parts, a writer thread stores them.

Every non-blank row ends *imported* (new or changed), *unchanged* (identical to what is
stored) or *rejected* (row, column, reason). The whole file is one transaction: a refusal,
a crash or a kill part-way leaves the ledger as it was.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import datetime as dt
import functools
import hashlib
import itertools
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, Engine, insert, update

from concord import ledger
from concord.db import ledger_write_lock
from concord.settings import Settings
from ingestion.contracts import TABLES, ContractError, Table
from ingestion.parsing import SHANGHAI
from ingestion.prepare import Prepared, _db_values, prepare
from ingestion.report import ImportReport
from ingestion.store import Stored, _Context, _restore_indexes, store
from ingestion.synonyms import Synonyms, load_synonyms
from ingestion.table_file import FilePart, TableFile, read_table

Progress = Callable[[str, int, int], None]
"""Progress callback: (stage, done, total)."""

_DONE = object()
_ABORT = object()


def import_file(
    table_name: str,
    path: Path,
    settings: Settings,
    engine: Engine,
    *,
    sheet: str | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
    rejected_rows: list[pd.DataFrame] | None = None,
    received_at: dt.datetime | None | str = "now",
) -> ImportReport:
    """Import one contract file into the ledger in a single transaction.

    ``received_at`` is when Concord learnt these rows: now by default, a given time when a
    feed is replayed, or None for a historical backfill (rows known when they happened).

    Chunks are read and parsed here (in worker processes when the file has several) while a
    writer thread stores the previous ones, so parsing and the database work overlap.
    Rejected rows (the file's own text plus
    ``reject_row``, ``reject_column`` and ``reject_reason``) are appended to
    ``rejected_rows`` when given.

    Raises:
        ContractError: the table is unknown or the file cannot be read as a whole; nothing
            is stored.
        SynonymError: the synonym file named in ``CONCORD_SYNONYMS`` cannot be used.
    """
    started = dt.datetime.now(dt.UTC)
    table = TABLES.get(table_name)
    if table is None:
        raise ContractError(f"Unknown table '{table_name}'; the tables are: {', '.join(TABLES)}.")
    path = Path(path)
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concord-import-digest")
    digest = hashing.submit(_sha256, path)  # hashlib lets go of the GIL: this overlaps the reading below
    hashing.shutdown(wait=False)
    synonyms = load_synonyms(settings)
    opened = read_table(path, table, sheet=sheet, header_spellings=synonyms.headers)
    today = today or dt.datetime.now(ZoneInfo(SHANGHAI)).date()
    secret = settings.pseudonym_key()
    report = ImportReport(
        table=table.name,
        source=path.name,
        sheet=opened.sheet,
        batch_id=None,
        ignored_columns=opened.ignored_columns,
        encoding=opened.encoding,
        detected=opened.described,
        header_row=opened.header_row,
        skipped_rows=opened.skipped,
    )
    if received_at == "now":
        received_at = started
    stamp = None if received_at is None else _db_values(pd.Series([pd.Timestamp(received_at)]), "timestamp")[0]
    work: queue.Queue[Any] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []
    flag_counts: dict[str, int] = {}

    def account(prepared: Prepared, stored: Stored) -> None:
        report.rows_read += prepared.rows_read
        report.inserted += stored.inserted
        report.updated += stored.updated
        report.unchanged += stored.unchanged
        report.redated += stored.redated
        report.rejections.extend(prepared.rejections)
        report.rejections.extend(stored.rejections)
        for flag in stored.flags:
            if flag:
                flag_counts[flag] = flag_counts.get(flag, 0) + 1
        if rejected_rows is not None:
            rejected_rows.extend(f for f in (prepared.rejected_frame, stored.rejected_frame) if f is not None)
        if progress:
            progress("importing", prepared.last_row - 1, opened.total_rows)

    def wait_for_writer() -> None:
        if progress:
            progress("waiting for another import into this ledger", 0, 0)

    def writer() -> None:
        batches = ledger.table(ledger.ImportBatch)
        context = _Context()
        try:
            # the workers keep reading while another import holds the ledger; the queue bounds them
            with ledger_write_lock(engine, wait_for_writer), _bulk_connection(engine) as conn, conn.begin():
                batch_key = conn.execute(
                    insert(batches).values(
                        table_name=table.name,
                        source_name=path.name[:255],
                        source_sha256=digest.result(),
                        sheet=opened.sheet,
                        started_at=started,
                        rows_read=0,
                    )
                ).inserted_primary_key
                report.batch_id = int(cast(Any, batch_key)[0])  # a single-row INSERT always has one
                while (item := work.get()) is not _DONE:
                    if item is _ABORT:
                        raise _Aborted
                    part, prepared = item
                    account(
                        prepared,
                        store(
                            conn,
                            table,
                            prepared,
                            context,
                            report.batch_id,
                            stamp,
                            part.read if keep_rejected else None,
                            opened.source_columns,
                        ),
                    )
                _restore_indexes(conn, context)
                report.imported = report.inserted + report.updated
                report.rejections.sort(key=lambda r: r.row)
                report.rejected = len(report.rejections)
                report.flags = flag_counts
                report.flagged = sum(flag_counts.values())
                conn.execute(
                    update(batches)
                    .where(batches.c.id == report.batch_id)
                    .values(
                        finished_at=dt.datetime.now(dt.UTC),
                        rows_read=report.rows_read,
                        imported=report.imported,
                        unchanged=report.unchanged,
                        rejected=report.rejected,
                        flagged=report.flagged,
                    )
                )
        except _Aborted:
            pass
        except BaseException as error:  # handed to the main thread, which re-raises it
            failure.append(error)
            while work.get() not in (_DONE, _ABORT):  # drain so the reader never blocks
                pass

    keep_rejected = rejected_rows is not None
    task = functools.partial(
        _prepare_part,
        table,
        secret=secret,
        today=today,
        source=opened.source_columns,
        keep_rejected=keep_rejected,
        synonyms=synonyms,
    )
    thread = threading.Thread(target=writer, name="concord-import-writer")
    pool = _worker_pool(opened)
    try:
        prepared_parts = _prepared_in_order(opened.parts(), task, pool)
        first = next(prepared_parts, None)  # the workers start before the writer thread does
        thread.start()
        for item in itertools.chain([first] if first is not None else [], prepared_parts):
            if failure:
                break
            work.put(item)
    except BaseException:
        if thread.is_alive():
            work.put(_ABORT)
            thread.join()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    work.put(_DONE)
    thread.join()
    if failure:
        raise failure[0]
    report.seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3)
    if report.imported + report.unchanged + report.rejected != report.rows_read:
        raise AssertionError(f"import accounting broke: {report}")  # a bug, never a user error
    return report


@contextlib.contextmanager
def _bulk_connection(engine: Engine) -> Iterator[Connection]:
    """A connection set up for one import's transaction, given back to the pool as it was.

    SQLite gets a larger page cache (index pages stay hot) and does not check foreign keys row
    by row. Every reference the importer writes is one it has just stored or looked up in the
    same transaction (the batch, creditors, debtors, case ids), so the checks cannot fail;
    each costs a random lookup in the debtors index, which made a 1,000,000-row case pool's
    last 100,000 rows cost 6.7 s CPU to store instead of 2.5 s. The pragma only takes effect
    outside a transaction, so it is set before the transaction begins and reset after it ends.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            yield conn
            return
        cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
        conn.exec_driver_sql("PRAGMA cache_size=-262144")  # KiB: 256 MiB
        conn.exec_driver_sql("PRAGMA temp_store=MEMORY")
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            yield conn
        finally:
            try:
                conn.rollback()  # nothing to roll back unless the caller's transaction was cut short
                conn.exec_driver_sql(f"PRAGMA foreign_keys={int(bool(foreign_keys))}")
                conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
                conn.commit()
            except Exception:
                conn.invalidate()  # never hand a connection without foreign keys to the pool
                raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Aborted(Exception):
    """The reading side failed; the writer rolls back."""


PARALLEL_PARTS = 2  # a file of at least this many chunks is parsed in worker processes


def _prepare_part(
    table: Table,
    part: FilePart,
    *,
    secret: bytes,
    today: dt.date,
    source: dict[str, str],
    keep_rejected: bool,
    synonyms: Synonyms,
) -> tuple[FilePart, Prepared]:
    """Read and prepare one part of a file (in a worker process or here)."""
    return part, prepare(table, part.read(), secret, today, source, keep_rejected, synonyms)


def _start_worker() -> None:
    """Worker initialiser: die with the importing process, even when it is killed outright,
    and yield the CPU to it (its writer is the one part of an import that cannot be split)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    with contextlib.suppress(OSError):
        os.nice(5)


def _worker_pool(opened: TableFile) -> ProcessPoolExecutor | None:
    """Worker processes for a file of several chunks, when the machine has cores to spare."""
    cores = os.cpu_count() or 1
    count = opened.part_count
    if cores < 2 or count is None or count < PARALLEL_PARTS:
        return None
    # fork: the workers inherit the loaded modules instead of importing them again.
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(max_workers=min(cores, count), mp_context=context, initializer=_start_worker)


def _prepared_in_order(
    parts: Iterable[FilePart], task: Callable[[FilePart], tuple[FilePart, Prepared]], pool: ProcessPoolExecutor | None
) -> Iterator[tuple[FilePart, Prepared]]:
    """Prepared parts in file order; with a pool, a few are prepared ahead (bounded memory)."""
    if pool is None:
        yield from map(task, parts)
        return
    ahead: collections.deque[Future[tuple[FilePart, Prepared]]] = collections.deque()
    limit = os.cpu_count() or 1  # one part per worker in flight: with the queue, bounded memory
    for part in parts:
        ahead.append(pool.submit(task, part))
        if len(ahead) >= limit:
            yield ahead.popleft().result()
    while ahead:
        yield ahead.popleft().result()
