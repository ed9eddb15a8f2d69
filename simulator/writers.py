"""Writing a simulated world to files: the six contract tables as CSV, xlsx or parquet in the
contract's formats, and the ground-truth tables as parquet.

CSV is UTF-8 without BOM, unquoted, dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``
(naive Asia/Shanghai), amounts with 2 decimals, booleans ``true``/``false``, lists
``;``-separated, blanks for missing values (``docs/simulator.md``, file formats).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion.contracts import TABLES as CONTRACT_TABLES

if TYPE_CHECKING:
    from simulator.world import World

TABLES: tuple[str, ...] = ("cases", "contact_checks", "events", "capacity", "litigation", "mediators")
XLSX_MAX_ROWS = 1_048_575  # data rows below the header row of one sheet
TRUTH_TABLES: tuple[str, ...] = ("truth", "truth_decisions", "truth_snapshot", "truth_actions")  # parquet only

_AMOUNT = pa.decimal128(18, 2)
_KIND_ARROW = {
    "amount": _AMOUNT,
    "rate": pa.decimal128(8, 4),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("s"),
}


def _column_kind(table: str, column: str) -> str:
    kind = CONTRACT_TABLES[table].by_name[column].kind
    if table == "capacity" and column == "income_stability":
        return "stability"
    return {"id_number": "string", "phone": "string", "enum": "string", "list": "string"}.get(kind, kind)


def _arrow_column(series: pd.Series, kind: str) -> pa.Array:
    """One column as typed Arrow, formatted the contract's way (2-place decimals, dates, ...)."""
    if kind == "string":
        if isinstance(series.dtype, pd.CategoricalDtype):
            cats = pa.array(series.cat.categories.array, type=pa.string(), from_pandas=True)
            codes = series.cat.codes.to_numpy()
            return cats.take(pa.array(codes, mask=codes < 0))
        return pa.array(series, type=pa.string(), from_pandas=True)
    if kind in ("amount", "rate"):
        places = 2 if kind == "amount" else 4
        values = np.round(series.to_numpy(dtype=float, na_value=np.nan), places)
        return pa.array(values, from_pandas=True).cast(_KIND_ARROW[kind])
    if kind == "stability":
        values = np.round(series.to_numpy(dtype=float, na_value=np.nan), 3)
        return pa.array(values, from_pandas=True).cast(pa.decimal128(5, 3))
    if kind == "date":
        return pa.array(series.to_numpy().astype("datetime64[D]"), from_pandas=True).cast(pa.date32())
    if kind == "timestamp":
        return pa.array(series.to_numpy().astype("datetime64[s]"), from_pandas=True)
    if kind == "int":
        return pa.array(series, type=pa.int64(), from_pandas=True)
    if kind == "bool":
        return pa.array(series, type=pa.bool_(), from_pandas=True)
    return pa.array(series, type=pa.float64(), from_pandas=True)


def to_arrow(df: pd.DataFrame, table: str) -> pa.Table:
    """A contract table as typed Arrow in contract column order (what write_world writes)."""
    names = [c.name for c in CONTRACT_TABLES[table].columns]
    return pa.table({name: _arrow_column(df[name], _column_kind(table, name)) for name in names})


def _write_csv(df: pd.DataFrame, table: str, path: Path, batch: int = 500_000) -> None:
    names = [c.name for c in CONTRACT_TABLES[table].columns]
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as sink:
        sink.write((",".join(names) + "\n").encode("utf-8"))
        for lo in range(0, len(df), batch):
            pacsv.write_csv(to_arrow(df.iloc[lo : lo + batch], table), sink, options)


def _write_xlsx(df: pd.DataFrame, table: str, path: Path) -> None:
    frame = to_arrow(df, table).to_pandas(types_mapper=None, date_as_object=True)
    for column in frame.columns:
        kind = _column_kind(table, column)
        if kind in ("amount", "rate", "stability"):
            frame[column] = frame[column].astype(float)
        elif kind == "bool":
            frame[column] = frame[column].map({True: "true", False: "false"})
        elif kind == "int":
            frame[column] = frame[column].astype("Int64")
    with pd.ExcelWriter(
        path,
        engine="xlsxwriter",
        date_format="yyyy-mm-dd",
        datetime_format="yyyy-mm-dd hh:mm:ss",
        engine_kwargs={"options": {"strings_to_urls": False, "strings_to_numbers": False}},
    ) as writer:
        frame.to_excel(writer, sheet_name=table, index=False)


def write_world(world: World, out_dir: Path, fmt: Literal["csv", "xlsx", "parquet"] = "csv") -> dict[str, Path]:
    """Write the six contract tables as ``<table>.<fmt>`` and each of ``TRUTH_TABLES`` as ``<name>.parquet``.

    CSV is UTF-8 without BOM, unquoted, dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``
    (naive Asia/Shanghai), amounts with 2 decimals, booleans ``true``/``false``, lists
    ``;``-separated, blanks for missing values. Returns the path of each file by table name.
    """
    if fmt not in ("csv", "xlsx", "parquet"):
        raise ValueError(f"unknown format '{fmt}': use csv, xlsx or parquet")
    if fmt == "xlsx":
        for table in TABLES:
            rows = len(getattr(world, table))
            if rows > XLSX_MAX_ROWS:
                raise ValueError(
                    f"table '{table}' has {rows:,} rows, more than one xlsx sheet holds "
                    f"({XLSX_MAX_ROWS:,}); write csv or parquet instead"
                )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table in TABLES:
        df = getattr(world, table)
        path = out_dir / f"{table}.{fmt}"
        if fmt == "csv":
            _write_csv(df, table, path)
        elif fmt == "parquet":
            # Row groups of 100,000 rows: a reader decodes a whole row group at a time, so
            # parallel importers of one big file each hold one group, not the file.
            pq.write_table(to_arrow(df, table), path, row_group_size=100_000)
        else:
            _write_xlsx(df, table, path)
        paths[table] = path
    for name in TRUTH_TABLES:
        path = out_dir / f"{name}.parquet"
        getattr(world, name).to_parquet(path, index=False)
        paths[name] = path
    return paths
