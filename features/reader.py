"""Reading contract files (CSV, xlsx/xls, parquet) into rows of text with spreadsheet row numbers.

A file that cannot be read as a whole raises :class:`ContractError` with one sentence that
names what is wrong; nothing downstream runs.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contracts import Table


class ContractError(Exception):
    """A file that cannot be imported as a whole; the message is one sentence for a user."""


@dataclass
class RawTable:
    """A file's rows as text, columns renamed to the contract's English names.

    ``rows`` holds the row number a spreadsheet shows for each row (header = row 1).
    """

    frame: pd.DataFrame
    rows: np.ndarray
    source_columns: dict[str, str]  # contract name -> header as written in the file
    ignored_columns: list[str] = field(default_factory=list)
    sheet: str | None = None
    encoding: str | None = None


def column_letter(position: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names a column."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _cell_text(value: object) -> str:
    """Canonical text of a typed cell (xlsx or parquet) before parsing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        # Excel keeps binary doubles: 0.1 + 0.2 shows as 0.3; 9 decimals remove that noise.
        text = repr(round(float(value), 9))
        return format(float(text), "f") if "e" in text else text
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.isoformat(sep=" ")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, pd.Timestamp):
        return str(value)
    return str(value)


def _sniff(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if head.startswith(b"PAR1"):
        return "parquet"
    return "csv"


def _read_csv(path: Path) -> tuple[list[str], pd.DataFrame, str]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            grid = pd.read_csv(
                path, header=None, dtype=str, keep_default_na=False, na_filter=False,
                skip_blank_lines=False, encoding=encoding, engine="c",
            )
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError as error:
            raise ContractError(f"{path.name} is empty.") from error
        except pd.errors.ParserError as error:
            raise ContractError(f"{path.name} is not a readable CSV file: {error}".rstrip(".") + ".") from error
        break
    else:
        raise ContractError(f"{path.name} is not text in UTF-8 or GB18030: it is not a CSV file.")
    if grid.empty:
        raise ContractError(f"{path.name} is empty.")
    header = [str(cell) for cell in grid.iloc[0].tolist()]
    body = grid.iloc[1:].reset_index(drop=True)
    return header, body, encoding


def _read_excel(path: Path, sheet: str | None) -> tuple[list[str], pd.DataFrame, str]:
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as error:  # calamine raises its own error types per format
        raise ContractError(f"{path.name} is not a readable spreadsheet ({error}).") from error
    names = workbook.sheet_names
    if sheet is None:
        if not names:
            raise ContractError(f"{path.name} has no sheets.")
        sheet = names[0]
    elif sheet not in names:
        raise ContractError(f"{path.name} has no sheet named '{sheet}'; its sheets are: {', '.join(names)}.")
    grid = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    if not grid:
        raise ContractError(f"Sheet '{sheet}' of {path.name} is empty.")
    width = max(len(row) for row in grid)
    text = [[_cell_text(cell) for cell in row] + [""] * (width - len(row)) for row in grid]
    return text[0], pd.DataFrame(text[1:], columns=range(width), dtype=object), sheet


def _read_parquet(path: Path) -> tuple[list[str], pd.DataFrame]:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for damaged files
        raise ContractError(f"{path.name} is not a readable parquet file ({error}).") from error
    header = [str(name) for name in frame.columns]
    body = pd.DataFrame(
        {i: [_cell_text(v) for v in frame[c].tolist()] for i, c in enumerate(frame.columns)},
        dtype=object,
    )
    return header, body


def _header_key(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).strip().lower()


def read_table(path: Path, table: Table, sheet: str | None = None) -> RawTable:
    """Read ``path`` as contract ``table``: map headers, drop blank rows, keep row numbers.

    Raises:
        ContractError: the file is missing, unreadable, lacks a required column, repeats a
            column, or names a sheet it does not have.
    """
    if not path.exists():
        raise ContractError(f"{path} does not exist.")
    if path.is_dir():
        raise ContractError(f"{path} is a folder, not a file.")
    kind = _sniff(path)
    encoding = None
    if kind in ("xlsx", "xls"):
        header, body, sheet = _read_excel(path, sheet)
    elif sheet is not None:
        raise ContractError(f"{path.name} is not a spreadsheet workbook, so it has no sheet '{sheet}'.")
    elif kind == "parquet":
        header, body = _read_parquet(path)
    else:
        with path.open("rb") as handle:
            if b"\x00" in handle.read(65536):
                raise ContractError(f"{path.name} is not a spreadsheet (CSV, xlsx or parquet).")
        header, body, encoding = _read_csv(path)

    lookup: dict[str, str] = {}
    for column in table.columns:
        lookup[column.name.lower()] = column.name
        lookup[_header_key(column.alias)] = column.name
    mapped: dict[int, str] = {}
    seen: dict[str, int] = {}
    source: dict[str, str] = {}
    ignored: list[str] = []
    for position, cell in enumerate(header):
        name = lookup.get(_header_key(cell))
        if name is None:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        if name in seen:
            first, second = column_letter(seen[name]), column_letter(position)
            raise ContractError(
                f"Column {table.label(name)} appears twice in {path.name} (columns {first} and {second})."
            )
        seen[name] = position
        mapped[position] = name
        source[name] = cell.strip()
    missing = [c for c in table.columns if c.required and c.name not in seen]
    if missing:
        names = ", ".join(table.label(c.name) for c in missing)
        plural = "columns" if len(missing) > 1 else "column"
        raise ContractError(f"{path.name} lacks the required {plural} {names} of the {table.name} table.")

    frame = pd.DataFrame(
        {name: body.iloc[:, position] if position < body.shape[1] else "" for position, name in mapped.items()}
    )
    for column in table.columns:
        if column.name not in frame:
            frame[column.name] = ""
    frame = frame[[c.name for c in table.columns]]
    rows = np.arange(2, len(body) + 2)
    filled = (body.astype(str).apply(lambda col: col.str.strip()) != "").any(axis=1).to_numpy()
    return RawTable(
        frame=frame.loc[filled].reset_index(drop=True),
        rows=rows[filled],
        source_columns=source,
        ignored_columns=ignored,
        sheet=sheet,
        encoding=encoding,
    )
