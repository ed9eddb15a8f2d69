"""The offline build's orchestration: reading the ledger, case chunks, worker processes, and
writing the parquet tables, their ``latest`` companions and the manifest (``build_offline_tables``).

``build_offline_tables(settings, as_of)`` reads the case ledger and writes, under
``settings.home / "features" / "offline"``, one parquet file per feature view of
``features/repo``. Every row carries ``event_timestamp``: the moment from which its values
were *known* (see ``features/offline/asof.py``), so that Feast's point-in-time join
(``get_historical_features``) returns exactly what Concord could have known at any entity
timestamp. Only information known at ``as_of`` enters: source rows available later are left out
and no row is stamped after ``as_of``. Re-run the build (then ``materialize``) on a schedule to
move the windows on.

Scale: the case-level table is computed case-chunk by case-chunk (``features/offline/case_state.py``),
written row group by row group; see ``benchmarks/bench_features.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, text

from concord.settings import Settings
from features.offline.asof import last_of_runs, utc
from features.offline.case_state import build_case_state
from features.offline.contact_repair import build_contact_repair
from features.offline.litigation import build_litigation
from features.offline.mediator_performance import build_mediator_performance
from features.offline.repayment_capacity import build_repayment_capacity
from features.offline.schemas import SCHEMAS, TABLE_NAMES, TIMESTAMP_FIELD

CHUNK_CASES = 50_000  # cases per case_state chunk: bounds memory (about 0.5 GB per 50,000 cases)
PARALLEL_MIN_CHUNKS = 4  # fewer chunks are built faster here than by starting worker processes
ROW_GROUP_ROWS = 100_000  # rows per parquet row group of the offline tables


def offline_dir(settings: Settings) -> Path:
    """Folder of the offline parquet tables: ``CONCORD_HOME/features/offline``."""
    return settings.home / "features" / "offline"


def offline_path(settings: Settings, table: str) -> Path:
    """Parquet file of one offline table (``contact_repair``, ``case_state``, ...)."""
    return offline_dir(settings) / f"{table}.parquet"


def latest_path(settings: Settings, table: str) -> Path:
    """Parquet file of each entity's last row of one offline table (what the online store holds
    after materialising up to the build's ``as_of``): ``<table>.latest.parquet``."""
    return offline_dir(settings) / f"{table}.latest.parquet"


def manifest_path(settings: Settings) -> Path:
    """JSON the build writes beside the tables: their ``as_of``, row counts and seconds."""
    return offline_dir(settings) / "manifest.json"


def built_as_of(settings: Settings) -> dt.datetime | None:
    """The ``as_of`` of the offline tables (from the build manifest), or None if never built."""
    path = manifest_path(settings)
    if not path.exists():
        return None
    return dt.datetime.fromisoformat(json.loads(path.read_text())["as_of"])


# --------------------------------------------------------------------------- reading and writing


def _read(conn: Connection, sql: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    """A query as a DataFrame (plain SQL that runs on SQLite and PostgreSQL alike)."""
    return pd.read_sql_query(text(sql), conn, params=params or {})


class _Writer:
    """Writes one parquet table atomically (a temporary file renamed on success)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.tmp = path.with_suffix(".parquet.tmp")
        self.schema = schema
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Dictionary pages only for strings, statistics only for what filters use: ~40 % faster
            # writes for ~5 % more bytes than the defaults.
            strings = [f.name for f in self.schema if pa.types.is_string(f.type)]
            stats = [self.schema.names[0], TIMESTAMP_FIELD]
            self.writer = pq.ParquetWriter(
                self.tmp, self.schema, compression="zstd", use_dictionary=strings, write_statistics=stats
            )
        # Row groups of 100,000 rows: a parquet reader (DuckDB's, pyarrow's) decodes a row group at
        # a time, so this bounds what one reading thread holds.
        self.writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def abort(self) -> None:
        """Drop the partial file (the previous table, if any, stays)."""
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        if self.writer is None:  # no rows at all: still write an empty, typed table
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.schema.empty_table(), self.tmp)
        else:
            self.writer.close()
        os.replace(self.tmp, self.path)
        return self.path


# --------------------------------------------------------------------------- the build


_CASES_SQL = """
SELECT c.id AS case_pk, cr.kind AS creditor_kind, c.product, c.debtor_type,
       CASE WHEN c.phone_key IS NULL THEN 0 ELSE 1 END AS has_phone,
       CAST(c.principal AS FLOAT) AS principal, CAST(c.interest AS FLOAT) AS interest,
       CAST(c.penalty AS FLOAT) AS penalty, CAST(c.fees AS FLOAT) AS fees,
       CAST(c.annual_rate AS FLOAT) AS annual_rate, c.in_scope, c.overdue_since, c.last_payment_date,
       c.received_at
FROM cases c JOIN creditors cr ON cr.id = c.creditor_id
WHERE c.id >= :lo AND c.id < :hi
"""
_EVENTS_SQL = """
SELECT case_pk, at, action, outcome, CAST(amount AS FLOAT) AS amount, received_at
FROM events WHERE case_pk >= :lo AND case_pk < :hi
"""
_CHECKS_SQL = "SELECT debtor_key, checked_at, phone_status, repaired_numbers, received_at FROM contact_checks"
_CAPACITY_SQL = """
SELECT debtor_key, as_of, CAST(monthly_income AS FLOAT) AS monthly_income, income_stability, employment,
       social_insurance_months, has_property, has_vehicle, CAST(other_debt AS FLOAT) AS other_debt,
       CAST(monthly_spend AS FLOAT) AS monthly_spend, received_at
FROM capacity_snapshots
"""
_LITIGATION_SQL = """
SELECT debtor_key, as_of, defendant_cases, enforcement_cases, terminated_no_assets, dishonest_listed,
       consumption_restricted, received_at
FROM litigation_records
"""
_MEDIATOR_EVENTS_SQL = "SELECT case_pk, actor, at, outcome, received_at FROM events WHERE actor <> 'system'"

# debtor-level and mediator-level tables: (table, query, builder, entity column)
_WHOLE_TABLES: tuple[tuple[str, str, Callable[[pd.DataFrame, float], pa.Table], str], ...] = (
    ("contact_repair", _CHECKS_SQL, build_contact_repair, "debtor_key"),
    ("repayment_capacity", _CAPACITY_SQL, build_repayment_capacity, "debtor_key"),
    ("litigation", _LITIGATION_SQL, build_litigation, "debtor_key"),
    ("mediator_performance", _MEDIATOR_EVENTS_SQL, build_mediator_performance, "mediator_id"),
)


def last_per_entity(table: pa.Table, entity: str) -> pa.Table:
    """Each entity's row with the latest ``event_timestamp`` (ties: the later row)."""
    if table.num_rows <= 1:
        return table
    table = table.sort_by([(entity, "ascending"), (TIMESTAMP_FIELD, "ascending")])
    keys = table[entity]
    changes = pc.not_equal(keys.slice(1), keys.slice(0, table.num_rows - 1)).to_numpy(zero_copy_only=False)
    return table.filter(np.append(changes, True))


def _case_state_part(engine: Engine, lo: int, hi: int, as_of_s: float) -> pa.Table | None:
    """``case_state`` rows of the cases with ids in [lo, hi), or None if there are none."""
    with engine.connect() as conn:
        cases = _read(conn, _CASES_SQL, {"lo": lo, "hi": hi})
        if cases.empty:
            return None
        events = _read(conn, _EVENTS_SQL, {"lo": lo, "hi": hi})
    table = build_case_state(cases, events, as_of_s)
    return table if table.num_rows else None


def _whole_table(engine: Engine, name: str, as_of_s: float) -> pa.Table:
    """One debtor- or mediator-level table, built from its whole source at once."""
    sql, builder = next((sql, builder) for table, sql, builder, _ in _WHOLE_TABLES if table == name)
    with engine.connect() as conn:
        source = _read(conn, sql)
    return builder(source, as_of_s)


_JOBS: dict[str, Callable[..., pa.Table | None]] = {"case_state": _case_state_part, "whole": _whole_table}
_ENGINES: dict[str, Engine] = {}


def _in_worker(settings: Settings, job: str, *args: object) -> pa.Table | None:
    """Run a build job in a worker process, on an engine kept for the process's lifetime."""
    from concord.db import make_engine

    engine = _ENGINES.get(settings.database_url)
    if engine is None:
        engine = _ENGINES[settings.database_url] = make_engine(settings, migrate=False)
    return _JOBS[job](engine, *args)


class _Inline:
    """Runs jobs at submission, in this process (small ledgers, or one CPU)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(self, _: Callable[..., object], settings: Settings, job: str, *args: object) -> Future[pa.Table | None]:
        future: Future[pa.Table | None] = Future()
        try:
            future.set_result(_JOBS[job](self.engine, *args))
        except BaseException as error:  # noqa: BLE001 - re-raised by result()
            future.set_exception(error)
        return future

    def shutdown(self, **_: object) -> None:
        """Nothing to stop."""


class _TableOutput:
    """An offline table and its ``.latest`` companion, each written atomically."""

    def __init__(self, settings: Settings, name: str, entity: str) -> None:
        schema = SCHEMAS[name]()
        self.name, self.entity, self.schema = name, entity, schema
        self.all = _Writer(offline_path(settings, name), schema)
        self.latest = _Writer(latest_path(settings, name), schema)

    def write(self, table: pa.Table | None, *, entity_sorted: bool = False) -> None:
        """Add rows of whole entities (no entity's rows are split across two calls)."""
        if table is None or not table.num_rows:
            return
        if entity_sorted:  # sorted by (entity, time) already: the last of each run
            keys = table[self.entity].to_numpy()
            last = table.filter(last_of_runs(keys))
        else:
            last = last_per_entity(table, self.entity)
        self.all.write(table)
        self.latest.write(last)

    def close(self) -> tuple[Path, Path]:
        return self.all.close(), self.latest.close()

    def abort(self) -> None:
        self.all.abort()
        self.latest.abort()


def build_offline_tables(
    settings: Settings,
    as_of: dt.datetime | None = None,
    *,
    engine: Engine | None = None,
    chunk_cases: int = CHUNK_CASES,
    workers: int | None = None,
) -> dict[str, Path]:
    """Write the five offline feature tables from the ledger, known at ``as_of`` (default now).

    Returns the parquet path of each table by name (``contact_repair``, ``repayment_capacity``,
    ``litigation``, ``case_state``, ``mediator_performance``) and writes, beside each, its
    ``.latest`` companion (each entity's last row, which materialisation reads) and
    ``manifest.json`` (the ``as_of``, row counts, seconds). Each file is replaced atomically.

    ``chunk_cases`` bounds memory: cases (and their events) are processed that many at a time.
    With ``PARALLEL_MIN_CHUNKS`` chunks or more, the chunks and the four other tables are built
    by ``workers`` processes (default: one per CPU), each reading the ledger itself; this process
    writes.
    """
    from concord.db import make_engine

    started = time.perf_counter()
    as_of_s = float(int(utc(as_of).timestamp()))
    own_engine = engine is None
    engine = engine or make_engine(settings)
    with engine.connect() as conn:
        low, high = conn.execute(text("SELECT MIN(id), MAX(id) FROM cases")).one()
    ranges = [] if low is None else [(lo, lo + chunk_cases) for lo in range(int(low), int(high) + 1, chunk_cases)]
    jobs: list[tuple[str, tuple[object, ...]]] = [("whole", (name, as_of_s)) for name, *_ in _WHOLE_TABLES]
    jobs += [("case_state", (lo, hi, as_of_s)) for lo, hi in ranges]
    workers = workers or os.cpu_count() or 1
    url = engine.url.render_as_string(hide_password=False)
    parallel = workers > 1 and len(ranges) >= PARALLEL_MIN_CHUNKS and ":memory:" not in url
    pool: ProcessPoolExecutor | _Inline = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if parallel else _Inline(engine)
    )
    worker_settings = dataclasses.replace(settings, database_url=url)
    outputs = {name: _TableOutput(settings, name, entity) for name, _, _, entity in _WHOLE_TABLES}
    outputs["case_state"] = _TableOutput(settings, "case_state", "case_pk")
    seconds: dict[str, float] = {}
    paths: dict[str, Path] = {}
    try:
        pending: deque[tuple[str, tuple[object, ...], Future[pa.Table | None]]] = deque()
        t0 = time.perf_counter()

        def consume() -> None:  # results in submission order: the case_state file stays sorted
            kind, job_args, future = pending.popleft()
            name = str(job_args[0]) if kind == "whole" else "case_state"
            outputs[name].write(future.result(), entity_sorted=kind == "case_state")
            if kind == "whole":
                paths[name] = outputs.pop(name).close()[0]
                seconds[name] = round(time.perf_counter() - t0, 2)

        for job, args in jobs:
            pending.append((job, args, pool.submit(_in_worker, worker_settings, job, *args)))
            while len(pending) > workers:  # at most one result waiting per worker: bounded memory
                consume()
        while pending:
            consume()
        paths["case_state"] = outputs.pop("case_state").close()[0]
        seconds["case_state"] = round(time.perf_counter() - t0, 2)
    except BaseException:
        for output in outputs.values():
            output.abort()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        if own_engine:
            engine.dispose()
    manifest = {
        "as_of": dt.datetime.fromtimestamp(as_of_s, dt.UTC).isoformat(),
        "built_at": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
        "workers": workers if parallel else 1,
        "table_seconds": seconds,
        "rows": {name: pq.ParquetFile(path).metadata.num_rows for name, path in paths.items()},
    }
    manifest_file = manifest_path(settings)
    tmp = manifest_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, manifest_file)
    return {name: paths[name] for name in TABLE_NAMES}
