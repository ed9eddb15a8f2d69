"""Writing prepared chunks into the ledger inside the import's transaction (:func:`store`).

Owns the bulk inserts and updates, creditors, debtors and cases looked up or recorded, the
stored rows a chunk's keys match (new, changed or unchanged), and the indexes deferred to the end.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, insert, select
from sqlalchemy import Table as SqlTable

from concord import ledger
from concord.vocabulary import creditor_kind
from ingestion.contracts import Table
from ingestion.prepare import Prepared, _db_values, _rejected_frame, _taken, _unpack
from ingestion.report import Rejection
from ingestion.table_file import RawTable
from ingestion.validate import _duplicates


def _chunks(items: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(conn: Connection, count: int) -> str:
    mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
    return ", ".join([mark] * count)


def bulk_insert(conn: Connection, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert many rows of driver-ready values inside the connection's transaction.

    PostgreSQL gets COPY; SQLite a prepared ``executemany``. Both bypass SQLAlchemy's
    per-value processing, which dominates at a million rows, and both take the rows as they
    come: an iterator (such as ``zip`` over columns) never holds every row as a tuple at once.
    """
    names = ", ".join(columns)
    with contextlib.closing(conn.connection.driver_connection.cursor()) as cursor:  # type: ignore[union-attr]
        if conn.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({_marks(conn, len(columns))})", rows)


def bulk_update(conn: Connection, sql: SqlTable, columns: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Update rows by ``id``; each tuple holds the values of ``columns`` and then the id."""
    if not rows:
        return
    mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
    if conn.dialect.name == "postgresql":
        # Typed placeholders: text values must land in numeric, date and timestamp columns.
        types = {c.name: c.type.compile(dialect=conn.dialect) for c in sql.columns}
        sets = ", ".join(f"{c} = CAST({mark} AS {types[c]})" for c in columns)
    else:
        sets = ", ".join(f"{c} = {mark}" for c in columns)
    conn.exec_driver_sql(f"UPDATE {sql.name} SET {sets} WHERE id = {mark}", list(rows))


def _ensure_creditors(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    creditors = ledger.table(ledger.Creditor)
    wanted = sorted(set(names))
    query = select(creditors.c.name, creditors.c.id)
    known = dict(conn.execute(query.where(creditors.c.name.in_(wanted))).all())
    missing = [n for n in wanted if n not in known]
    if missing:
        now = ledger.utcnow()
        conn.execute(insert(creditors), [{"name": n, "kind": creditor_kind(n), "created_at": now} for n in missing])
        known.update(dict(conn.execute(query.where(creditors.c.name.in_(missing))).all()))
    return known


def _ensure_debtors(conn: Connection, keys: Iterable[str], masks: Iterable[str | None]) -> None:
    """Record debtors (pseudonym, masked ID) by pseudonym; those already known are left as they are."""
    now = _db_values(pd.Series([pd.Timestamp.now(tz="UTC")]), "timestamp")[0]
    statement = (
        f"INSERT INTO debtors (debtor_key, id_masked, created_at) VALUES ({_marks(conn, 3)}) "
        "ON CONFLICT (debtor_key) DO NOTHING"
    )
    rows = zip(keys, masks, itertools.repeat(now))
    with contextlib.closing(conn.connection.driver_connection.cursor()) as cursor:  # type: ignore[union-attr]
        cursor.executemany(statement, rows)


def _existing(conn: Connection, sql: SqlTable, keys: list[str], probe: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Stored (key columns, id, row_hash, received_at) of the rows whose key is among ``probe``.

    The probe keys go to a temporary table and the database joins: no giant IN lists, and it
    scales with the file, not with the ledger.
    """
    empty = pd.DataFrame(columns=[*keys, "id", "row_hash", "received_at"])
    if not probe:
        return empty
    names = ", ".join(keys)
    conn.exec_driver_sql("DROP TABLE IF EXISTS concord_probe")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE concord_probe AS SELECT {names} FROM {sql.name} WHERE 1 = 0")
    bulk_insert(conn, "concord_probe", keys, probe)
    on = " AND ".join(f"t.{k} = p.{k}" for k in keys)
    rows = conn.exec_driver_sql(
        f"SELECT {', '.join('t.' + k for k in keys)}, t.id, t.row_hash, t.received_at "
        f"FROM {sql.name} t JOIN concord_probe p ON {on}"
    ).all()
    conn.exec_driver_sql("DROP TABLE concord_probe")
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=[*keys, "id", "row_hash", "received_at"])


def _defer_indexes(conn: Connection, table: str) -> list[str]:
    """Drop the plain (not unique) indexes of an empty SQLite table; the statements that make
    them again, for :func:`_restore_indexes` once every row is in.

    Building an index from a million rows at once (a sort) costs far less than keeping it up
    to date row by row at random places (cases: ``debtor_key``, a keyed hash): storing
    1,000,000 cases took 12.3 s CPU plus 2.0 s for the index instead of 21.3 s. Only for a
    table that was empty, so the rebuild never costs more than the rows being imported. Both
    the drop and the rebuild are inside the import's transaction: a kill leaves the indexes.
    """
    if conn.dialect.name != "sqlite":
        return []
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
    ).all()
    plain = [(name, statement) for name, statement in found if not statement.upper().startswith("CREATE UNIQUE")]
    for name, _ in plain:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [statement for _, statement in plain]


def _restore_indexes(conn: Connection, context: _Context) -> None:
    for statement in context.deferred_indexes:
        conn.exec_driver_sql(statement)
    context.deferred_indexes = []


@dataclass
class _Context:
    """Lookups kept across the chunks of one import."""

    creditors: dict[str, int] = field(default_factory=dict)
    cases: dict[str, dict[str, int]] = field(default_factory=dict)  # creditor -> case_id -> pk
    seen: dict[str, int] = field(default_factory=dict)  # key text -> first row with it
    # Whether the table held rows when the import began. If not, no row of this file can
    # match a stored one: the file's keys are distinct, so the probe is skipped.
    had_rows: bool | None = None
    deferred_indexes: list[str] = field(default_factory=list)  # CREATE INDEX statements to run at the end


def _case_keys(conn: Connection, context: _Context, names: Iterable[str]) -> None:
    cases, creditors = ledger.table(ledger.Case), ledger.table(ledger.Creditor)
    missing = sorted(set(names) - set(context.cases))
    for name in missing:
        context.cases[name] = {}
    for chunk in _chunks(missing, 500):
        query = (
            select(creditors.c.name, cases.c.case_id, cases.c.id)
            .join(creditors, creditors.c.id == cases.c.creditor_id)
            .where(creditors.c.name.in_(chunk))
        )
        for name, case_id, pk in conn.execute(query):
            context.cases[name][case_id] = pk


@dataclass
class Stored:
    inserted: int
    updated: int
    unchanged: int
    flags: list[str]
    rejections: list[Rejection]
    rejected_frame: pd.DataFrame | None
    redated: int = 0  # unchanged rows now known from an earlier time


def _late_frame(raw: RawTable, source: dict[str, str], rejections: list[Rejection]) -> pd.DataFrame:
    """The file's own text of rows rejected while storing, with the reject columns."""
    by_row = {r.row: r for r in rejections}
    mask = np.isin(raw.rows, list(by_row))
    rows = raw.rows[mask]
    return _rejected_frame(
        raw, mask, source, [by_row[r].column for r in rows.tolist()], [by_row[r].reason for r in rows.tolist()], rows
    )


def store(
    conn: Connection,
    table: Table,
    prepared: Prepared,
    context: _Context,
    batch_id: int,
    stamp: str | None,
    reread: Callable[[], RawTable] | None = None,
    source: dict[str, str] | None = None,
) -> Stored:
    """Write one prepared chunk: resolve ledger ids, insert new rows, update changed ones.

    Rows can still be rejected here: a key an earlier chunk used, or (events) a case the
    ledger does not hold. ``reread`` gives the chunk's raw rows again for the rejected-rows
    file (with ``source``, the headers as written).
    """
    sql = ledger.Base.metadata.tables[prepared.sql]
    columns = {name: _unpack(values) for name, values in prepared.columns.items()}
    debtor_keys = columns.get("debtor_key")  # all of the part's rows: debtor_order points into them
    creditors, case_ids = _unpack(prepared.creditors), _unpack(prepared.case_ids)
    keep = np.ones(len(prepared.hashes), dtype=bool)
    late: list[Rejection] = []
    duplicates = _duplicates(table, _unpack(prepared.keys), prepared.rows, context.seen)
    if duplicates:
        keep[list(duplicates)] = False
        late.extend(Rejection(int(prepared.rows[i]), table.key[-1], reason) for i, reason in duplicates.items())
    if prepared.resolve == "creditor":
        missing = set(creditors) - set(context.creditors)
        if missing:
            context.creditors.update(_ensure_creditors(conn, missing))
        columns = {"creditor_id": [context.creditors[n] for n in creditors], **columns}
    elif prepared.resolve == "case":
        _case_keys(conn, context, creditors)
        pks = [context.cases[n].get(c) for n, c in zip(creditors, case_ids, strict=True)]
        columns = {"case_pk": pks, **columns}
        unknown = keep & np.array([pk is None for pk in pks], dtype=bool)
        if unknown.any():
            keep &= ~unknown
            reason = (
                f"{table.label('case_id')} is not a case of that creditor in the ledger (import the case pool first)"
            )
            late.extend(Rejection(int(r), "case_id", reason) for r in prepared.rows[unknown])
    late_frame = _late_frame(reread(), source or {}, late) if late and reread is not None else None

    every = bool(keep.all())
    positions = np.flatnonzero(keep)
    if not every:
        columns = {n: [v[i] for i in positions] for n, v in columns.items()}
    hashes = prepared.hashes.to_numpy(zero_copy_only=False)
    hashes = hashes if every else hashes[keep]
    if debtor_keys is not None:
        order = prepared.debtor_order if every else prepared.debtor_order[keep[prepared.debtor_order]]
        debtors, masks = (_taken(values, order) for values in (debtor_keys, _unpack(prepared.debtor_masks)))
        _ensure_debtors(conn, debtors, masks)

    if context.had_rows is None:
        context.had_rows = conn.execute(select(sql.c.id).limit(1)).first() is not None
        if not context.had_rows:
            context.deferred_indexes = _defer_indexes(conn, sql.name)
    count = len(hashes)
    if context.had_rows:
        probe = list(zip(*(columns[k] for k in prepared.key), strict=True))
        existing = _existing(conn, sql, prepared.key, probe)
    else:
        existing = pd.DataFrame()
    if existing.empty:
        stored_id = np.full(count, np.nan)
        stored_hash = np.full(count, None, dtype=object)
        stored_received = pd.Series(pd.NaT, index=range(count), dtype="datetime64[us, UTC]")
    else:
        # Keys compare as the text the driver stored: SQLite returns that text, PostgreSQL
        # typed values, which _db_values turns into the same text.
        kinds = {c.name: c.type.python_type.__name__ for c in sql.columns if c.name in prepared.key}
        for name in prepared.key:
            if kinds[name] == "datetime":
                existing[name] = _db_values(pd.to_datetime(existing[name], utc=True), "timestamp")
            elif kinds[name] == "date":
                existing[name] = _db_values(pd.to_datetime(existing[name]), "date")
        lookup = pd.DataFrame({k: pd.Series(columns[k], dtype=existing[k].dtype) for k in prepared.key})
        merged = lookup.merge(existing, on=prepared.key, how="left")
        stored_id = merged["id"].to_numpy(dtype=float)
        stored_hash = merged["row_hash"].to_numpy(dtype=object)
        stored_received = pd.to_datetime(merged["received_at"], utc=True, format="ISO8601")
    new = np.isnan(stored_id)
    same = ~new & (stored_hash == hashes)
    changed = ~new & ~same
    # A row counts from when Concord first learnt it: an unchanged row received again earlier
    # (a --historical re-import of rows first imported as new) takes the earlier time.
    known = stored_received.notna().to_numpy()
    earlier = known if stamp is None else known & (stored_received > pd.Timestamp(stamp, tz="UTC")).to_numpy()
    redated = np.flatnonzero(same & earlier)

    names = [*columns, "row_hash", "batch_id", "received_at"]
    columns["row_hash"] = hashes.tolist()
    columns["batch_id"] = [batch_id] * count
    columns["received_at"] = [stamp] * count
    if new.all():  # the rows go to the driver one by one, never all as tuples at once
        bulk_insert(conn, sql.name, names, zip(*(columns[n] for n in names), strict=True))
    else:
        rows = list(zip(*(columns[n] for n in names), strict=True))
        if new.any():
            bulk_insert(conn, sql.name, names, [rows[i] for i in np.flatnonzero(new)])
        bulk_update(conn, sql, names, [(*rows[i], int(stored_id[i])) for i in np.flatnonzero(changed)])
    bulk_update(conn, sql, ["received_at", "batch_id"], [(stamp, batch_id, int(stored_id[i])) for i in redated])
    flags = _unpack(prepared.flags)
    flags = flags if every else [flags[i] for i in positions]
    return Stored(int(new.sum()), int(changed.sum()), int(same.sum()), flags, late, late_frame, len(redated))
