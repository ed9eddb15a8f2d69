"""``concord import``: contract files into the case ledger, row by row accounted for.

Every non-blank row ends *imported* (new or changed), *unchanged* (identical to what is
stored) or *rejected* (row, column, reason). The whole file is one transaction: a refusal,
a crash or a kill part-way leaves the ledger as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table as SqlTable, insert, select, update
from sqlalchemy.sql import bindparam

from concord import ledger
from concord.pseudonym import mask_id_number, mask_phone, pseudonyms
from concord.settings import Settings
from features import parsing
from features.contracts import TABLES, Column, Table, creditor_kind, SCOPE_PRINCIPAL_LIMIT
from features.reader import ContractError, RawTable, read_table

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

    def reject(self, mask: pd.Series | np.ndarray, column: str, reason: str | pd.Series) -> None:
        """Record ``reason`` for rows in ``mask`` that have no fault yet."""
        target = pd.Series(np.asarray(mask, dtype=bool), index=self.values.index) & self.error_column.isna()
        self.error_column.loc[target] = column
        if isinstance(reason, pd.Series):
            self.error_reason.loc[target] = reason.loc[target]
        else:
            self.error_reason.loc[target] = reason

    @property
    def ok(self) -> pd.Series:
        return self.error_column.isna()


def validate(table: Table, raw: RawTable) -> Validated:
    """Parse every column by its contract rule; the first fault per row, in column order."""
    index = raw.frame.index
    values = pd.DataFrame(index=index)
    result = Validated(values, pd.Series(pd.NA, index=index, dtype=object), pd.Series(pd.NA, index=index, dtype=object))
    for column in table.columns:
        text = parsing.normalise_text(raw.frame[column.name])
        if column.default is not None:
            text = text.fillna(column.default)
        parsed = _parse_column(column, text)
        values[column.name] = parsed.values
        label = table.label(column.name)
        if column.personal or column.kind in ("enum", "list"):
            reason = label + " " + parsed.errors
        else:
            reason = label + " " + parsed.errors + ": '" + text.astype(str) + "'"
        result.reject(parsed.errors.notna(), column.name, reason)
        if column.required and column.name != "id_number":
            result.reject(text.isna(), column.name, f"{label} is required")
    return result


def _check_cases(table: Table, result: Validated, today: dt.date) -> None:
    v = result.values
    person = v["debtor_type"] == "person"
    # id_number: required for persons; companies may carry another registration number.
    result.reject(person & v["id_number"].isna() & result.ok, "id_number", f"{table.label('id_number')} is required for a person")
    loan, overdue = v["loan_date"], v["overdue_since"]
    result.reject(overdue < loan, "overdue_since", f"{table.label('overdue_since')} is before {table.label('loan_date')}")
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


def _reject_duplicates(table: Table, result: Validated, rows: np.ndarray) -> None:
    ok = result.ok
    keys = result.values.loc[ok, list(table.key)]
    duplicated = keys.duplicated(keep="first")
    if not duplicated.any():
        return
    first_row = {}
    for index, key in zip(keys.index, map(tuple, keys.itertuples(index=False)), strict=True):
        first_row.setdefault(key, rows[index])
    reasons = pd.Series(pd.NA, index=result.values.index, dtype=object)
    for index in keys.index[duplicated.to_numpy()]:
        key = tuple(keys.loc[index])
        reasons.loc[index] = f"duplicate key ({', '.join(table.key)}): row {first_row[key]} has the same"
    mask = reasons.notna()
    result.reject(mask, table.key[-1], reasons)


# --------------------------------------------------------------------------- storage


def _row_hash(frame: pd.DataFrame) -> list[str]:
    """A stable digest of each row's stored content (canonical text, unit separator)."""
    text = frame.astype(str).replace({"<NA>": "", "NaT": "", "nan": "", "None": ""})
    joined = text.iloc[:, 0].str.cat([text[c] for c in text.columns[1:]], sep="\x1f")
    return [hashlib.blake2b(value.encode(), digest_size=16).hexdigest() for value in joined]


def _py(series: pd.Series, kind: str) -> list[Any]:
    """Column values as the Python objects SQLAlchemy binds (Decimal, date, datetime, ...)."""
    if kind == "amount" or kind == "rate":
        return [None if v is pd.NA or v is None else Decimal(v) for v in series.tolist()]
    if kind == "date":
        return [None if pd.isna(v) else v.date() for v in series.tolist()]
    if kind == "timestamp":
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in naive.tolist()]
    if kind == "int":
        return [None if pd.isna(v) else int(v) for v in series.tolist()]
    if kind == "float":
        return [None if pd.isna(v) else float(v) for v in series.tolist()]
    if kind == "bool":
        return [None if v is pd.NA or v is None else bool(v) for v in series.tolist()]
    return [None if v is pd.NA or v is None or (isinstance(v, float) and np.isnan(v)) else v for v in series.tolist()]


def _chunks(items: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ensure_creditors(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    creditors = ledger.Creditor.__table__
    wanted = sorted(set(names))
    known = {n: i for n, i in conn.execute(select(creditors.c.name, creditors.c.id).where(creditors.c.name.in_(wanted)))}
    missing = [n for n in wanted if n not in known]
    if missing:
        now = ledger.utcnow()
        conn.execute(insert(creditors), [{"name": n, "kind": creditor_kind(n), "created_at": now} for n in missing])
        known.update(dict(conn.execute(select(creditors.c.name, creditors.c.id).where(creditors.c.name.in_(missing))).tuples().all()))
    return known


def _ensure_debtors(conn: Connection, keys: list[str], masked: list[str]) -> dict[str, int]:
    debtors = ledger.Debtor.__table__
    wanted = dict(zip(keys, masked, strict=True))
    known: dict[str, int] = {}
    for chunk in _chunks(list(wanted)):
        known.update(dict(conn.execute(select(debtors.c.debtor_key, debtors.c.id).where(debtors.c.debtor_key.in_(chunk))).tuples().all()))
    missing = [k for k in wanted if k not in known]
    now = ledger.utcnow()
    for chunk in _chunks(missing, CHUNK):
        conn.execute(insert(debtors), [{"debtor_key": k, "id_masked": wanted[k], "created_at": now} for k in chunk])
    if missing:
        for chunk in _chunks(missing):
            known.update(dict(conn.execute(select(debtors.c.debtor_key, debtors.c.id).where(debtors.c.debtor_key.in_(chunk))).tuples().all()))
    return known


def _existing(conn: Connection, sql: SqlTable, keys: list[str], scope_column: str, scope: Iterable[Any]) -> pd.DataFrame:
    """Stored (key columns, id, row_hash) of rows whose ``scope_column`` is in ``scope``."""
    columns = [sql.c[k] for k in keys] + [sql.c.id, sql.c.row_hash]
    parts = []
    for chunk in _chunks(sorted(set(scope))):
        rows = conn.execute(select(*columns).where(sql.c[scope_column].in_(chunk))).all()
        if rows:
            parts.append(pd.DataFrame(rows, columns=[*keys, "id", "row_hash"]))
    if not parts:
        return pd.DataFrame(columns=[*keys, "id", "row_hash"])
    return pd.concat(parts, ignore_index=True)


@dataclass
class Plan:
    """Rows ready to store: DB column values per accepted row, the DB key and a scope."""

    sql: SqlTable
    db: pd.DataFrame  # DB column name -> python values
    kinds: dict[str, str]
    key: list[str]
    scope_column: str


def _store(
    conn: Connection, plan: Plan, hashes: list[str], batch_id: int, now: dt.datetime, progress: Progress | None
) -> tuple[int, int, int]:
    """Insert new rows, update changed ones (by ``hashes``); returns (inserted, updated, unchanged)."""
    db = plan.db
    existing = _existing(conn, plan.sql, plan.key, plan.scope_column, db[plan.scope_column].dropna().tolist())
    probe = db[plan.key].copy()
    for name in plan.key:
        kind = plan.kinds.get(name)
        if kind == "timestamp":
            existing[name] = pd.to_datetime(existing[name], utc=True)
            probe[name] = pd.to_datetime(probe[name], utc=True)
        elif kind == "date":
            existing[name] = pd.to_datetime(existing[name])
            probe[name] = pd.to_datetime(probe[name])
        else:
            existing[name] = existing[name].astype(object)
            probe[name] = probe[name].astype(object)
    probe["_position"] = np.arange(len(probe))
    merged = probe.merge(existing, on=plan.key, how="left")
    merged = merged.sort_values("_position")
    stored_id = merged["id"].to_numpy()
    stored_hash = merged["row_hash"].to_numpy()
    new = pd.isna(stored_id)
    same = ~new & (stored_hash == np.array(hashes, dtype=object))
    changed = ~new & ~same

    columns = {name: _py(db[name], plan.kinds.get(name, "string")) for name in db.columns}
    columns["row_hash"] = hashes
    names = list(columns)
    total = int(new.sum() + changed.sum())
    done = 0
    positions = np.flatnonzero(new)
    for chunk in _chunks(positions, CHUNK):
        rows = [{**{n: columns[n][i] for n in names}, "batch_id": batch_id, "received_at": now} for i in chunk]
        conn.execute(insert(plan.sql), rows)
        done += len(chunk)
        if progress:
            progress("storing", done, total)
    positions = np.flatnonzero(changed)
    if len(positions):
        statement = (
            update(plan.sql)
            .where(plan.sql.c.id == bindparam("_id"))
            .values({n: bindparam(n) for n in [*names, "batch_id", "received_at"]})
        )
        for chunk in _chunks(positions, CHUNK):
            rows = [
                {**{n: columns[n][i] for n in names}, "_id": int(stored_id[i]), "batch_id": batch_id, "received_at": now}
                for i in chunk
            ]
            conn.execute(statement, rows)
            done += len(chunk)
            if progress:
                progress("storing", done, total)
    return int(new.sum()), int(changed.sum()), int(same.sum())


def _debtor_columns(conn: Connection, key: bytes, ids: pd.Series) -> pd.Series:
    """Debtor ids (creating debtors) for resident ID numbers; NA where no number."""
    present = ids.notna()
    numbers = ids[present].astype(str).tolist()
    keys = pseudonyms(key, "id", numbers)
    known = _ensure_debtors(conn, keys, [mask_id_number(n) for n in numbers])
    out = pd.Series(pd.NA, index=ids.index, dtype=object)
    out.loc[present] = [known[k] for k in keys]
    return out


def _plan(table: Table, conn: Connection, values: pd.DataFrame, key: bytes, result: Validated, rows: np.ndarray) -> tuple[Plan, pd.Series]:
    """Table-specific mapping of parsed contract values to ledger columns; returns flags too."""
    flags = pd.Series("", index=values.index, dtype=object)
    kinds = {c.name: c.kind for c in table.columns}
    if table.name == "cases":
        creditor_ids = _ensure_creditors(conn, values["creditor"])
        principal = values["principal"].astype(float)
        scope = (values["product"] == "credit_card") | ((values["debtor_type"] == "person") & (principal < SCOPE_PRINCIPAL_LIMIT))
        flags = flags.where(scope, "out_of_scope")
        phones = values["phone"]
        has_phone = phones.notna()
        phone_key = pd.Series(pd.NA, index=values.index, dtype=object)
        phone_key.loc[has_phone] = pseudonyms(key, "phone", phones[has_phone].tolist())
        db = pd.DataFrame(
            {
                "creditor_id": values["creditor"].map(creditor_ids),
                "case_id": values["case_id"],
                "debtor_id": _debtor_columns(conn, key, values["id_number"]),
                "product": values["product"],
                "debtor_type": values["debtor_type"],
                "debtor_name": values["debtor_name"],
                "phone_key": phone_key,
                "phone_masked": phones.map(mask_phone, na_action="ignore"),
                **{c: values[c] for c in ("province", "principal", "interest", "penalty", "fees", "annual_rate",
                                         "loan_date", "overdue_since", "last_payment_date", "court")},
                "in_scope": scope,
                "flags": flags,
            }
        )
        db["updated_at"] = ledger.utcnow()
        # ``updated_at`` must not make an unchanged row look changed; it is set, not hashed.
        plan = Plan(ledger.Case.__table__, db, {**kinds, "in_scope": "bool", "creditor_id": "int", "debtor_id": "int"},
                    ["creditor_id", "case_id"], "creditor_id")
        return plan, flags
    if table.name in ("contact_checks", "capacity", "litigation"):
        sql = {"contact_checks": ledger.ContactCheck, "capacity": ledger.CapacitySnapshot,
               "litigation": ledger.LitigationRecord}[table.name].__table__
        db = values.drop(columns=["id_number"]).copy()
        db.insert(0, "debtor_id", _debtor_columns(conn, key, values["id_number"]))
        when = "checked_at" if table.name == "contact_checks" else "as_of"
        return Plan(sql, db, {**kinds, "debtor_id": "int"}, ["debtor_id", when], "debtor_id"), flags
    if table.name == "events":
        cases = ledger.Case.__table__
        creditors = ledger.Creditor.__table__
        names = sorted(values["creditor"].dropna().unique())
        lookup: dict[tuple[str, str], int] = {}
        for chunk in _chunks(names, 500):
            query = (
                select(creditors.c.name, cases.c.case_id, cases.c.id)
                .join(creditors, creditors.c.id == cases.c.creditor_id)
                .where(creditors.c.name.in_(chunk))
            )
            lookup.update({(n, c): i for n, c, i in conn.execute(query)})
        case_pk = pd.Series([lookup.get((n, c)) for n, c in zip(values["creditor"], values["case_id"], strict=True)],
                            index=values.index, dtype=object)
        unknown = case_pk.isna()
        if unknown.any():
            result.reject(unknown.to_numpy(), "case_id",
                          f"{table.label('case_id')} is not a case of that creditor in the ledger (import the case pool first)")
        db = values.drop(columns=["case_id", "creditor"]).copy()
        db.insert(0, "case_pk", case_pk)
        return Plan(ledger.Event.__table__, db, {**kinds, "case_pk": "int"}, ["case_pk", "at", "action", "actor"], "case_pk"), flags
    if table.name == "mediators":
        db = values.copy()
        db[["languages", "products", "provinces"]] = db[["languages", "products", "provinces"]].fillna("")
        return Plan(ledger.Mediator.__table__, db, kinds, ["mediator_id"], "mediator_id"), flags
    raise ValueError(f"unknown table {table.name}")


def _stored_hash_columns(plan: Plan) -> pd.DataFrame:
    return plan.db.drop(columns=[c for c in ("updated_at",) if c in plan.db.columns])


# --------------------------------------------------------------------------- entry point


def import_file(
    table_name: str,
    path: Path,
    settings: Settings,
    engine: Engine,
    *,
    sheet: str | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
) -> tuple[ImportReport, RawTable, Validated]:
    """Import one contract file into the ledger in a single transaction.

    Returns the report plus the raw and validated rows (for the rejected-rows file).

    Raises:
        ContractError: the table is unknown or the file cannot be read as a whole; nothing
            is stored.
    """
    started = dt.datetime.now(dt.UTC)
    table = TABLES.get(table_name)
    if table is None:
        raise ContractError(f"Unknown table '{table_name}'; the tables are: {', '.join(TABLES)}.")
    path = Path(path)
    if progress:
        progress("reading", 0, 1)
    raw = read_table(path, table, sheet=sheet)
    if progress:
        progress("validating", 0, len(raw.frame))
    today = today or dt.datetime.now(ZoneInfo(SHANGHAI)).date()
    result = validate(table, raw)
    if table.name == "cases":
        _company_ids(raw, result)
        _check_cases(table, result, today)
    _reject_duplicates(table, result, raw.rows)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    key = settings.pseudonym_key()
    report = ImportReport(table=table.name, source=path.name, sheet=raw.sheet, batch_id=None,
                          rows_read=len(raw.frame), ignored_columns=raw.ignored_columns, encoding=raw.encoding)
    batches = ledger.ImportBatch.__table__
    with engine.begin() as conn:
        batch_id = conn.execute(
            insert(batches).values(table_name=table.name, source_name=path.name[:255], source_sha256=digest,
                                   sheet=raw.sheet, started_at=started, rows_read=len(raw.frame))
        ).inserted_primary_key[0]
        report.batch_id = int(batch_id)
        ok_values = result.values.loc[result.ok]
        plan, flags = _plan(table, conn, ok_values, key, result, raw.rows)
        # _plan may reject more rows (unknown cases); keep only rows still accepted.
        keep = result.ok.loc[ok_values.index].to_numpy()
        plan.db = plan.db.loc[keep]
        flags = flags.loc[keep]
        hashes = _row_hash(_stored_hash_columns(plan))
        inserted, updated, unchanged = _store(conn, plan, hashes, report.batch_id, started, progress)
        report.inserted, report.updated, report.unchanged = inserted, updated, unchanged
        report.imported = inserted + updated
        flagged = flags[flags != ""]
        report.flagged = int(len(flagged))
        report.flags = {str(k): int(v) for k, v in flagged.value_counts().items()}
        rejected = result.error_column.notna()
        report.rejected = int(rejected.sum())
        report.rejections = [
            Rejection(int(raw.rows[i]), str(result.error_column.iloc[i]), str(result.error_reason.iloc[i]))
            for i in np.flatnonzero(rejected.to_numpy())
        ]
        report.seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3)
        conn.execute(
            update(batches).where(batches.c.id == report.batch_id).values(
                finished_at=dt.datetime.now(dt.UTC), imported=report.imported, unchanged=report.unchanged,
                rejected=report.rejected, flagged=report.flagged)
        )
    assert report.imported + report.unchanged + report.rejected == report.rows_read
    return report, raw, result


def write_outputs(report: ImportReport, raw: RawTable, result: Validated, report_path: Path) -> Path | None:
    """Write the JSON report and, if any row was rejected, the rejected rows as CSV.

    The CSV keeps the file's own headers and values, plus ``reject_row``, ``reject_column``
    and ``reject_reason``, so a clerk can fix it and send it again (extra columns are ignored
    on import). Returns the CSV's path, or None.
    """
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    rejected = result.error_column.notna().to_numpy()
    if not rejected.any():
        return None
    frame = raw.frame.loc[rejected].rename(columns=raw.source_columns)
    frame = frame[[c for c in frame.columns if c in raw.source_columns.values()]]
    frame["reject_row"] = raw.rows[rejected]
    frame["reject_column"] = result.error_column.loc[rejected].to_numpy()
    frame["reject_reason"] = result.error_reason.loc[rejected].to_numpy()
    csv_path = report_path.with_name(report_path.stem + ".rejected.csv")
    frame.to_csv(csv_path, index=False, encoding="utf-8-sig")
    return csv_path
