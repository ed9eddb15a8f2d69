"""``concord import``: contract files into the case ledger, row by row accounted for.

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
import json
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy import Table as SqlTable

from concord import ledger
from concord.pseudonym import mask_id_number, mask_phone, pseudonyms
from concord.settings import Settings
from concord.vocabulary import SCOPE_PRINCIPAL_LIMIT, creditor_kind
from ingestion import parsing
from ingestion.contracts import TABLES, Column, Table
from ingestion.reader import ContractError, FilePart, RawTable, TableFile, read_table

Progress = Callable[[str, int, int], None]
"""Progress callback: (stage, done, total)."""

CHUNK = 20_000
SHANGHAI = "Asia/Shanghai"


@dataclass
class Rejection:
    """One rejected row: its spreadsheet row number, the column at fault and why."""

    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    """What an import did; the counts add up to ``rows_read``."""

    table: str
    source: str
    sheet: str | None
    batch_id: int | None
    rows_read: int = 0
    imported: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    redated: int = 0  # of the unchanged rows, those now known from an earlier time (a --historical re-import)
    rejected: int = 0
    flagged: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str | None = None
    rejections: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The report as written to ``--report``."""
        return asdict(self)


# --------------------------------------------------------------------------- validation


def _parse_column(column: Column, text: pd.Series) -> parsing.Parsed:
    kind = column.kind
    if kind == "amount":
        return parsing.parse_amount(text)
    if kind == "date":
        return parsing.parse_date(text)
    if kind == "timestamp":
        return parsing.parse_timestamp(text)
    if kind == "enum":
        assert column.choices is not None
        return parsing.parse_enum(text, column.choices)
    if kind == "int":
        return parsing.parse_int(text, minimum=int(column.low or 0))
    if kind == "float":
        return parsing.parse_float(
            text, column.low if column.low is not None else -np.inf,
            column.high if column.high is not None else np.inf, low_open=column.low_open,
        )
    if kind == "bool":
        return parsing.parse_bool(text)
    if kind == "id_number":
        return parsing.parse_id_number(text)
    if kind == "phone":
        return parsing.parse_phone(text)
    if kind == "list":
        return parsing.parse_list(text, column.choices)
    if kind == "rate":
        return parsing.parse_rate(text)
    return parsing.parse_string(text, max_length=255)


@dataclass
class Validated:
    """Parsed values of a file and the first fault of each row (NA where none)."""

    values: pd.DataFrame
    error_column: pd.Series
    error_reason: pd.Series
    blank: np.ndarray | None = None  # rows with no value in any contract column

    def reject(self, mask: pd.Series | np.ndarray, column: str, reason: str | pd.Series) -> None:
        """Record ``reason`` for rows in ``mask`` that have no fault yet."""
        if isinstance(mask, pd.Series):
            mask = mask.reindex(self.values.index, fill_value=False).fillna(False).astype(bool)
        target = pd.Series(np.asarray(mask, dtype=bool), index=self.values.index) & self.error_column.isna()
        self.error_column.loc[target] = column
        if isinstance(reason, pd.Series):
            self.error_reason.loc[target] = reason.loc[target]
        else:
            self.error_reason.loc[target] = reason

    @property
    def ok(self) -> pd.Series:
        return self.error_column.isna()


_DISTINCT_MIN_ROWS = 1000


def _distinct(cells: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """For a column that repeats its values (dates, products, rates, courts): the position of
    each row's value among the distinct ones, and the distinct values with NA last. None for
    a column of mostly distinct values, where finding the repeats costs more than it saves.
    """
    if len(cells) < _DISTINCT_MIN_ROWS or cells.iloc[:1000].nunique(dropna=False) > 900:
        return None
    codes, uniques = _factorized(cells)
    if len(uniques) > len(cells) // 4:
        return None
    distinct = pd.concat([pd.Series(uniques, dtype=cells.dtype), pd.Series([pd.NA], dtype=cells.dtype)],
                         ignore_index=True)
    return codes, distinct


def _factorized(values: pd.Series | np.ndarray) -> tuple[np.ndarray, Any]:
    """Each value's position among the distinct values (missing ones: the position after the
    last), and the distinct values."""
    codes, uniques = pd.factorize(values)
    return np.where(codes < 0, len(uniques), codes).astype(np.int32), uniques


def _spread(series: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """Values of distinct cells back on the rows that hold them."""
    return series.take(codes).set_axis(index)


def validate(table: Table, raw: RawTable) -> Validated:
    """Parse every column by its contract rule; the first fault per row, in column order.

    Each value is parsed per cell, so a column that repeats its values has only its distinct
    values parsed (see :func:`_distinct`), with the same results.
    """
    index = raw.frame.index
    values = pd.DataFrame(index=index)
    result = Validated(values, pd.Series(pd.NA, index=index, dtype=object), pd.Series(pd.NA, index=index, dtype=object))
    present = np.zeros(len(index), dtype=bool)
    for column in table.columns:
        cells = raw.frame[column.name]
        distinct = _distinct(cells)
        text = parsing.normalise_text(cells if distinct is None else distinct[1])
        given = text.notna()
        if column.default is not None:
            text = text.fillna(column.default)
        parsed = _parse_column(column, text)
        if distinct is not None:
            codes = distinct[0]
            text, given = _spread(text, codes, index), _spread(given, codes, index)
            parsed = parsing.Parsed(_spread(parsed.values, codes, index), _spread(parsed.errors, codes, index))
        present |= given.to_numpy()
        values[column.name] = parsed.values
        label = table.label(column.name)
        faulty = parsed.errors.notna()
        if faulty.any():
            reason = label + " " + parsed.errors[faulty]
            if not (column.personal or column.kind in ("enum", "list")):
                reason = reason + ": '" + text[faulty].astype(str) + "'"
            result.reject(faulty, column.name, reason.reindex(index))
        if column.required:
            missing = text.isna()
            if missing.any():
                result.reject(missing, column.name, f"{label} is required")
    result.blank = ~present
    return result


def _check_cases(table: Table, result: Validated, today: dt.date) -> None:
    v = result.values
    person = v["debtor_type"] == "person"
    # id_number: required for persons; companies may carry another registration number.
    result.reject(person & v["id_number"].isna() & result.ok, "id_number",
                  f"{table.label('id_number')} is required for a person")
    loan, overdue = v["loan_date"], v["overdue_since"]
    result.reject(overdue < loan, "overdue_since",
                  f"{table.label('overdue_since')} is before {table.label('loan_date')}")
    result.reject(overdue > pd.Timestamp(today), "overdue_since", f"{table.label('overdue_since')} is in the future")
    result.reject(v["loan_date"] > pd.Timestamp(today), "loan_date", f"{table.label('loan_date')} is in the future")


def _company_ids(raw: RawTable, result: Validated) -> None:
    """Companies keep their registration number as written (not a resident ID)."""
    company = (result.values["debtor_type"] == "company").fillna(False)
    if not company.any():
        return
    text = parsing.normalise_text(raw.frame["id_number"]).str.replace(r"\s", "", regex=True).str.upper()
    result.values.loc[company, "id_number"] = text[company].astype(object)
    cleared = company & (result.error_column == "id_number")
    result.error_column.loc[cleared] = pd.NA
    result.error_reason.loc[cleared] = pd.NA


def _key_text(table: Table, values: pd.DataFrame) -> list[str]:
    """Each row's key as one string (parsed values), to find a key used twice in a file."""
    keys = values[list(table.key)]
    text = keys.iloc[:, 0].astype(str)
    for name in keys.columns[1:]:
        text = text + "\x1f" + keys[name].astype(str)
    return text.tolist()


def _duplicates(table: Table, keys: list[str], rows: np.ndarray, seen: dict[str, int]) -> dict[int, str]:
    """Positions of rows whose key an earlier row of the file used (``seen``: key -> first row).

    Only rows without another fault take part, so a duplicate is the last check of a row.
    """
    names = ", ".join(table.key)
    found = {}
    for position, (key, row) in enumerate(zip(keys, rows.tolist(), strict=True)):
        first = seen.setdefault(key, row)
        if first != row:
            found[position] = f"duplicate key ({names}): row {first} has the same"
    return found


# --------------------------------------------------------------------------- preparing rows


def _row_hash(frame: pd.DataFrame) -> pa.StringArray:
    """A stable 64-bit digest of each row's parsed content, as 16 hex characters."""
    digest = pd.util.hash_pandas_object(frame, index=False, categorize=False).to_numpy()
    # "%016x" of each digest, nibble by nibble for the whole column (np.char.mod goes per value),
    # straight into the buffers of an Arrow text array: no Python object per row.
    nibbles = (digest[:, None] >> np.arange(60, -1, -4, dtype=np.uint64)) & np.uint64(15)
    count = len(digest)
    offsets = np.arange(0, 16 * count + 1, 16, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(_HEX_DIGITS[nibbles].tobytes()))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass
class _Coded:
    """A column of few distinct values: each row's position in ``values``."""

    codes: np.ndarray
    values: list[Any]


Packed: TypeAlias = list[Any] | pa.Array | _Coded
"""A column of driver-ready values as a worker sends it to the writer (see :func:`_pack`)."""


def _pack(values: np.ndarray) -> Packed:
    """Object ``values`` (text and None) in a form that pickles as a few buffers instead of one
    object per row: codes into the distinct values for a column that repeats them, an Arrow
    text array for one that does not. Anything but text and None stays a list.
    """
    if len(values) == 0 or pd.api.types.infer_dtype(values, skipna=True) != "string":
        return values.tolist()
    sample = values[:1000].tolist()
    if len(values) >= 100 and 2 * len(set(sample)) <= len(sample):
        codes, uniques = _factorized(values)
        return _Coded(codes, [*uniques.tolist(), None])
    return pa.array(values, type=pa.large_string(), from_pandas=True)


def _unpack(column: Packed) -> list[Any]:
    """The values of a packed column as a list (equal texts of a coded column as one object)."""
    if isinstance(column, list):
        return column
    if isinstance(column, _Coded):
        return _taken(column.values, column.codes)
    return column.to_numpy(zero_copy_only=False).tolist()


def _taken(values: list[Any], positions: np.ndarray) -> list[Any]:
    """``values`` at ``positions``, as a list."""
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return table[positions].tolist()


def _as_text(moments: np.ndarray, unit: Literal["D", "us"]) -> _Coded:
    """ISO text of datetime64 values, None for NaT, as codes into the distinct moments' texts."""
    ticks = moments.view(np.int64)
    unique, inverse = np.unique(ticks, return_inverse=True)
    stamps = unique.view(moments.dtype)
    text = np.datetime_as_string(stamps, unit=unit)
    if unit != "D":
        text = np.char.replace(text, "T", " ")
    text = text.astype(object)
    text[np.isnat(stamps)] = None
    return _Coded(inverse.reshape(-1).astype(np.int32), text.tolist())


def _db_values(series: pd.Series, kind: str) -> list[Any]:
    """Column values as a DB driver takes them, for SQLite and PostgreSQL alike.

    Dates and timestamps become ISO text (SQLAlchemy's own SQLite storage format; PostgreSQL
    parses it), amounts stay canonical decimal text, missing values become None.
    """
    return _unpack(_db_column(series, kind))


def _db_column(series: pd.Series, kind: str) -> Packed:
    """:func:`_db_values` packed to be sent to the writer."""
    if series.empty:  # every row of the part was rejected (numpy's string ops refuse empty arrays)
        return []
    if kind == "date":
        return _as_text(series.to_numpy(dtype="datetime64[D]"), "D")
    if kind == "timestamp":
        array = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        return _as_text(array, "us")
    if kind == "int":
        return [None if pd.isna(v) else int(v) for v in series.tolist()]
    if kind == "float":
        return [None if pd.isna(v) else float(v) for v in series.tolist()]
    if kind == "bool":
        return [None if v is None or v is pd.NA else bool(v) for v in series.tolist()]
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return _pack(values)


@dataclass
class Prepared:
    """One chunk, parsed and checked, ready for the ledger (no database needed to make it).

    ``columns`` hold driver-ready values of the accepted rows. ``resolve`` names the column
    the writer still has to look up in the ledger: ``creditor`` (creditor name -> id) or
    ``case`` (creditor and case_id -> case pk, rejecting unknown cases). Columns of values
    are packed (see :func:`_pack`): a worker process sends them to the writer as a few
    buffers each, and the writer unpacks them.
    """

    sql: str  # ledger table name
    columns: dict[str, Packed]
    key: list[str]
    hashes: pa.Array
    flags: Packed
    rows: np.ndarray  # spreadsheet rows of the accepted rows
    keys: Packed  # key text of the accepted rows (see _key_text)
    debtor_masks: Packed  # masked ID of each accepted row's debtor_key, to record
    rejections: list[Rejection]
    rejected_frame: pd.DataFrame | None
    rows_read: int
    last_row: int
    resolve: str | None = None
    creditors: Packed = field(default_factory=list)
    debtor_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rows with a debtor, by key
    case_ids: Packed = field(default_factory=list)


def _rejected_frame(raw: RawTable, mask: np.ndarray, source: dict[str, str], columns: Sequence[str],
                    reasons: Sequence[str], rows: np.ndarray) -> pd.DataFrame:
    frame = raw.frame.loc[mask, list(source)].rename(columns=source)
    frame["reject_row"] = rows
    frame["reject_column"] = list(columns)
    frame["reject_reason"] = list(reasons)
    return frame


def prepare(table: Table, raw: RawTable, secret: bytes, today: dt.date, source: dict[str, str],
            keep_rejected: bool) -> Prepared:
    """Validate a chunk and shape its accepted rows for the ledger (pseudonyms included).

    Needs neither the database nor the other chunks: a key repeated from another chunk is
    found when the chunk is stored (see :func:`_duplicates`).
    """
    result = validate(table, raw)
    if result.blank is not None and result.blank.any():
        keep = ~result.blank
        raw = RawTable(raw.frame.loc[keep].reset_index(drop=True), raw.rows[keep], raw.last_row)
        result = Validated(result.values.loc[keep].reset_index(drop=True),
                           result.error_column.loc[keep].reset_index(drop=True),
                           result.error_reason.loc[keep].reset_index(drop=True))
    if table.name == "cases":
        _company_ids(raw, result)
        _check_cases(table, result, today)
    ok = result.ok.to_numpy()
    values = result.values.loc[ok]
    kinds = {c.name: c.kind for c in table.columns}
    flags = pd.Series("", index=values.index, dtype=object)
    masks = pd.Series(None, index=values.index, dtype=object)

    def debtor_keys(ids: pd.Series) -> pd.Series:
        present = ids.notna()
        numbers = ids[present].astype(str).tolist()
        keys = pseudonyms(secret, "id", numbers)
        masks.loc[present] = [mask_id_number(n) for n in numbers]
        out = pd.Series(pd.NA, index=ids.index, dtype=object)
        out.loc[present] = keys
        return out

    resolve = None
    if table.name == "cases":
        principal = values["principal"].astype(float)
        scope = (values["product"] == "credit_card") | (
            (values["debtor_type"] == "person") & (principal < SCOPE_PRINCIPAL_LIMIT))
        flags = flags.where(scope, "out_of_scope")
        phones = values["phone"]
        has_phone = phones.notna()
        phone_key = pd.Series(pd.NA, index=values.index, dtype=object)
        phone_key.loc[has_phone] = pseudonyms(secret, "phone", phones[has_phone].tolist())
        db = pd.DataFrame({
            "case_id": values["case_id"],
            "debtor_key": debtor_keys(values["id_number"]),
            "product": values["product"],
            "debtor_type": values["debtor_type"],
            "debtor_name": values["debtor_name"],
            "phone_key": phone_key,
            "phone_masked": phones.map(mask_phone, na_action="ignore"),
            **{c: values[c] for c in ("province", "principal", "interest", "penalty", "fees", "annual_rate",
                                     "loan_date", "overdue_since", "last_payment_date", "court")},
            "in_scope": scope,
            "flags": flags,
        })
        hash_frame = db.assign(creditor=values["creditor"])
        db["updated_at"] = pd.Timestamp.now(tz="UTC")
        kinds.update(in_scope="bool", updated_at="timestamp")
        sql, key, resolve = ledger.Case.__tablename__, ["creditor_id", "case_id"], "creditor"
    elif table.name in ("contact_checks", "capacity", "litigation"):
        sql = {"contact_checks": ledger.ContactCheck, "capacity": ledger.CapacitySnapshot,
               "litigation": ledger.LitigationRecord}[table.name].__tablename__
        db = values.drop(columns=["id_number"])
        db.insert(0, "debtor_key", debtor_keys(values["id_number"]))
        hash_frame = db
        key = ["debtor_key", "checked_at" if table.name == "contact_checks" else "as_of"]
    elif table.name == "events":
        db = values.drop(columns=["case_id", "creditor"])
        hash_frame = values
        sql, key, resolve = ledger.Event.__tablename__, ["case_pk", "at", "action", "actor"], "case"
    elif table.name == "mediators":
        db = values.copy()
        db[["languages", "products", "provinces"]] = db[["languages", "products", "provinces"]].fillna("")
        hash_frame = db
        sql, key = ledger.Mediator.__tablename__, ["mediator_id"]
    else:
        raise ValueError(f"unknown table {table.name}")

    rejected = ~ok
    rows = raw.rows[rejected]
    columns_at_fault = result.error_column[rejected].astype(str).tolist()
    reasons = result.error_reason[rejected].astype(str).tolist()
    columns = {name: _db_column(db[name], kinds.get(name, "string")) for name in db.columns}
    return Prepared(
        sql=sql,
        columns=columns,
        key=key,
        hashes=_row_hash(hash_frame),
        flags=_db_column(flags, "string"),
        rows=raw.rows[ok],
        keys=_pack(np.asarray(_key_text(table, values), dtype=object)),
        debtor_masks=_db_column(masks, "string"),
        rejections=[Rejection(int(r), c, m) for r, c, m in zip(rows, columns_at_fault, reasons, strict=True)],
        rejected_frame=(_rejected_frame(raw, rejected, source, columns_at_fault, reasons, rows)
                        if keep_rejected and rejected.any() else None),
        rows_read=len(raw.frame),
        last_row=raw.last_row,
        resolve=resolve,
        creditors=_db_column(values["creditor"], "string") if resolve else [],
        case_ids=_db_column(values["case_id"], "string") if resolve == "case" else [],
        debtor_order=_key_order(columns["debtor_key"]) if "debtor_key" in columns else np.zeros(0, dtype=np.int64),
    )


def _key_order(keys: Packed) -> np.ndarray:
    """Positions of the keys that are not None, in key order.

    The writer records debtors in this order: SQLite then inserts into the debtors index
    page after page instead of at random (1,000,000 debtors in parts of 100,000: 3.7 s CPU
    instead of 5.3 s, the gap growing with the ledger).
    """
    text = keys if isinstance(keys, pa.Array) else pa.array(_unpack(keys), pa.large_string())
    present = np.flatnonzero(text.is_valid().to_numpy(zero_copy_only=False))
    if present.size == 0:
        return present
    order = pc.sort_indices(text.take(pa.array(present))).to_numpy()
    return present[order]


# --------------------------------------------------------------------------- storing rows


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
    statement = (f"INSERT INTO debtors (debtor_key, id_masked, created_at) VALUES ({_marks(conn, 3)}) "
                 "ON CONFLICT (debtor_key) DO NOTHING")
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
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,)).all()
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
    return _rejected_frame(raw, mask, source, [by_row[r].column for r in rows.tolist()],
                           [by_row[r].reason for r in rows.tolist()], rows)


def store(conn: Connection, table: Table, prepared: Prepared, context: _Context, batch_id: int, stamp: str | None,
          reread: Callable[[], RawTable] | None = None, source: dict[str, str] | None = None) -> Stored:
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
            reason = (f"{table.label('case_id')} is not a case of that creditor in the ledger "
                      "(import the case pool first)")
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


# --------------------------------------------------------------------------- entry point

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
    """
    started = dt.datetime.now(dt.UTC)
    table = TABLES.get(table_name)
    if table is None:
        raise ContractError(f"Unknown table '{table_name}'; the tables are: {', '.join(TABLES)}.")
    path = Path(path)
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concord-import-digest")
    digest = hashing.submit(_sha256, path)  # hashlib lets go of the GIL: this overlaps the reading below
    hashing.shutdown(wait=False)
    opened = read_table(path, table, sheet=sheet)
    today = today or dt.datetime.now(ZoneInfo(SHANGHAI)).date()
    secret = settings.pseudonym_key()
    report = ImportReport(table=table.name, source=path.name, sheet=opened.sheet, batch_id=None,
                          ignored_columns=opened.ignored_columns, encoding=opened.encoding)
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

    def writer() -> None:
        batches = ledger.table(ledger.ImportBatch)
        context = _Context()
        try:
            with _bulk_connection(engine) as conn, conn.begin():
                batch_key = conn.execute(insert(batches).values(
                    table_name=table.name, source_name=path.name[:255], source_sha256=digest.result(),
                    sheet=opened.sheet, started_at=started, rows_read=0)).inserted_primary_key
                report.batch_id = int(cast(Any, batch_key)[0])  # a single-row INSERT always has one
                while (item := work.get()) is not _DONE:
                    if item is _ABORT:
                        raise _Aborted
                    part, prepared = item
                    account(prepared, store(conn, table, prepared, context, report.batch_id, stamp,
                                            part.read if keep_rejected else None, opened.source_columns))
                _restore_indexes(conn, context)
                report.imported = report.inserted + report.updated
                report.rejections.sort(key=lambda r: r.row)
                report.rejected = len(report.rejections)
                report.flags = flag_counts
                report.flagged = sum(flag_counts.values())
                conn.execute(update(batches).where(batches.c.id == report.batch_id).values(
                    finished_at=dt.datetime.now(dt.UTC), rows_read=report.rows_read, imported=report.imported,
                    unchanged=report.unchanged, rejected=report.rejected, flagged=report.flagged))
        except _Aborted:
            pass
        except BaseException as error:  # handed to the main thread, which re-raises it
            failure.append(error)
            while work.get() not in (_DONE, _ABORT):  # drain so the reader never blocks
                pass

    keep_rejected = rejected_rows is not None
    task = functools.partial(_prepare_part, table, secret=secret, today=today, source=opened.source_columns,
                             keep_rejected=keep_rejected)
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Aborted(Exception):
    """The reading side failed; the writer rolls back."""


PARALLEL_PARTS = 2  # a file of at least this many chunks is parsed in worker processes


def _prepare_part(table: Table, part: FilePart, *, secret: bytes, today: dt.date, source: dict[str, str],
                  keep_rejected: bool) -> tuple[FilePart, Prepared]:
    """Read and prepare one part of a file (in a worker process or here)."""
    return part, prepare(table, part.read(), secret, today, source, keep_rejected)


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


def _prepared_in_order(parts: Iterable[FilePart], task: Callable[[FilePart], tuple[FilePart, Prepared]],
                       pool: ProcessPoolExecutor | None) -> Iterator[tuple[FilePart, Prepared]]:
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


def write_outputs(report: ImportReport, rejected_rows: list[pd.DataFrame], report_path: Path) -> Path | None:
    """Write the JSON report and, if any row was rejected, the rejected rows as CSV.

    The CSV keeps the file's own headers and values, plus ``reject_row``, ``reject_column``
    and ``reject_reason``, so a clerk can fix it and send it again (extra columns are ignored
    on import). Returns the CSV's path, or None.
    """
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    if not rejected_rows:
        return None
    csv_path = report_path.with_name(report_path.stem + ".rejected.csv")
    frame = pd.concat(rejected_rows, ignore_index=True).sort_values("reject_row", kind="stable")
    frame.to_csv(csv_path, index=False, encoding="utf-8-sig")
    return csv_path
