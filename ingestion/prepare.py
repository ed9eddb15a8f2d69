"""Shaping a validated chunk for the ledger, with no database: pseudonyms, the scope flag,
row hashes, and columns packed for the writer (:func:`prepare`, :class:`Prepared`).

A worker process makes a :class:`Prepared` and sends it to the writer: each packed column
pickles as a few buffers, not an object per value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from concord import ledger
from concord.pseudonym import mask_id_number, mask_phone, pseudonyms
from concord.vocabulary import SCOPE_PRINCIPAL_LIMIT
from ingestion.contracts import Table
from ingestion.report import Rejection
from ingestion.synonyms import Synonyms
from ingestion.table_file import RawTable
from ingestion.validate import Validated, _check_cases, _company_ids, _factorized, _key_text, validate


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
    keys: Packed  # key text of the accepted rows (see validate._key_text)
    debtor_masks: Packed  # masked ID of each accepted row's debtor_key, to record
    rejections: list[Rejection]
    rejected_frame: pd.DataFrame | None
    rows_read: int
    last_row: int
    resolve: str | None = None
    creditors: Packed = field(default_factory=list)
    debtor_order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rows with a debtor, by key
    case_ids: Packed = field(default_factory=list)


def _rejected_frame(
    raw: RawTable,
    mask: np.ndarray,
    source: dict[str, str],
    columns: Sequence[str],
    reasons: Sequence[str],
    rows: np.ndarray,
) -> pd.DataFrame:
    frame = raw.frame.loc[mask, list(source)].rename(columns=source)
    frame["reject_row"] = rows
    frame["reject_column"] = list(columns)
    frame["reject_reason"] = list(reasons)
    return frame


def prepare(
    table: Table,
    raw: RawTable,
    secret: bytes,
    today: dt.date,
    source: dict[str, str],
    keep_rejected: bool,
    synonyms: Synonyms | None = None,
) -> Prepared:
    """Validate a chunk and shape its accepted rows for the ledger (pseudonyms included).

    Needs neither the database nor the other chunks: a key repeated from another chunk is
    found when the chunk is stored (see :func:`ingestion.validate._duplicates`).
    """
    result = validate(table, raw, today, synonyms)
    if result.blank is not None and result.blank.any():
        keep = ~result.blank
        raw = RawTable(raw.frame.loc[keep].reset_index(drop=True), raw.rows[keep], raw.last_row)
        result = Validated(
            result.values.loc[keep].reset_index(drop=True),
            result.error_column.loc[keep].reset_index(drop=True),
            result.error_reason.loc[keep].reset_index(drop=True),
        )
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
            (values["debtor_type"] == "person") & (principal < SCOPE_PRINCIPAL_LIMIT)
        )
        flags = flags.where(scope, "out_of_scope")
        phones = values["phone"]
        has_phone = phones.notna()
        phone_key = pd.Series(pd.NA, index=values.index, dtype=object)
        phone_key.loc[has_phone] = pseudonyms(secret, "phone", phones[has_phone].tolist())
        db = pd.DataFrame(
            {
                "case_id": values["case_id"],
                "debtor_key": debtor_keys(values["id_number"]),
                "product": values["product"],
                "debtor_type": values["debtor_type"],
                "debtor_name": values["debtor_name"],
                "phone_key": phone_key,
                "phone_masked": phones.map(mask_phone, na_action="ignore"),
                **{
                    c: values[c]
                    for c in (
                        "province",
                        "principal",
                        "interest",
                        "penalty",
                        "fees",
                        "annual_rate",
                        "loan_date",
                        "overdue_since",
                        "last_payment_date",
                        "court",
                    )
                },
                "in_scope": scope,
                "flags": flags,
            }
        )
        hash_frame = db.assign(creditor=values["creditor"])
        db["updated_at"] = pd.Timestamp.now(tz="UTC")
        kinds.update(in_scope="bool", updated_at="timestamp")
        sql, key, resolve = ledger.Case.__tablename__, ["creditor_id", "case_id"], "creditor"
    elif table.name in ("contact_checks", "capacity", "litigation"):
        sql = {
            "contact_checks": ledger.ContactCheck,
            "capacity": ledger.CapacitySnapshot,
            "litigation": ledger.LitigationRecord,
        }[table.name].__tablename__
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
        rejected_frame=(
            _rejected_frame(raw, rejected, source, columns_at_fault, reasons, rows)
            if keep_rejected and rejected.any()
            else None
        ),
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
