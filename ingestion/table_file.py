"""Contract files as the importer sees them: the header matched to a contract table, the rows
as parts of text with spreadsheet row numbers (:func:`read_table`, :class:`TableFile`).

The format is read from the file's content; each format has its own module (``csv_format``,
``excel_format``, ``parquet_format``). A file that cannot be read as a whole raises
:class:`~ingestion.contracts.ContractError` with one sentence that names what is wrong.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.contracts import ContractError, Table
from ingestion.csv_format import _count_lines, _read_csv, _read_csv_range
from ingestion.excel_format import _read_excel
from ingestion.parquet_format import _read_parquet, _read_parquet_range
from ingestion.parts import CsvRange, ParquetRange, _csv_ranges


@dataclass
class RawTable:
    """A chunk of a file's rows as text, columns renamed to the contract's English names.

    ``rows`` holds the row number a spreadsheet shows for each row (header = row 1).
    """

    frame: pd.DataFrame
    rows: np.ndarray
    last_row: int = 1  # the last spreadsheet row this chunk covers, blank or not


@dataclass
class TableFile:
    """An opened contract file: its column mapping and a stream of row chunks."""

    path: Path
    table: Table
    source_columns: dict[str, str]  # contract name -> header as written in the file
    ignored_columns: list[str]
    sheet: str | None
    encoding: str | None
    total_rows: int  # data rows in the file, blank ones included (for progress)
    _positions: dict[int, str] = field(repr=False)
    _bodies: Callable[[], Iterator[pd.DataFrame]] = field(repr=False)
    _csv_ranges: list[CsvRange] | None = field(default=None, repr=False)
    _parquet_ranges: list[ParquetRange] | None = field(default=None, repr=False)

    def chunks(self) -> Iterator[RawTable]:
        """Non-blank rows in chunks, contract columns only, with spreadsheet row numbers."""
        for part in self.parts():
            yield part.read()

    def parts(self) -> Iterator[FilePart]:
        """The chunks as parts that any process can read on its own (see :class:`FilePart`).

        A CSV file whose records can be told apart without parsing (see ``parts._csv_ranges``) is
        cut into byte ranges that are parsed where they are read; otherwise the rows are
        parsed here and the part carries them. A parquet file is cut into runs of rows, read
        where they are read.
        """
        if self._csv_ranges is not None:
            for byte_range in self._csv_ranges:
                yield FilePart(self.table, self._positions, csv=byte_range)
            return
        if self._parquet_ranges is not None:
            for row_range in self._parquet_ranges:
                yield FilePart(self.table, self._positions, parquet=row_range)
            return
        first_row = 2
        for body in self._bodies():
            yield FilePart(self.table, self._positions, body=body, first_row=first_row)
            first_row += len(body)

    @property
    def part_count(self) -> int | None:
        """How many parts :meth:`parts` yields, when known without reading the rows."""
        ranges = self._csv_ranges if self._csv_ranges is not None else self._parquet_ranges
        return None if ranges is None else len(ranges)


@dataclass
class FilePart:
    """One chunk of a file, cheap to send to another process and to read again.

    Either a CSV byte range or parquet rows, read on :meth:`read`, or rows already parsed
    (``body``).
    """

    table: Table
    positions: dict[int, str]  # column position in the file -> contract name
    csv: CsvRange | None = None
    parquet: ParquetRange | None = None
    body: pd.DataFrame | None = None
    first_row: int = 2

    def read(self) -> RawTable:
        """Non-blank rows of this part, contract columns only, with spreadsheet row numbers."""
        if self.csv is not None:
            body, first_row = _read_csv_range(self.csv), self.csv.first_row
        elif self.parquet is not None:
            body, first_row = _read_parquet_range(self.parquet), self.parquet.first_row
        else:
            assert self.body is not None
            body, first_row = self.body, self.first_row
        rows = np.arange(first_row, first_row + len(body))
        filled = _filled(body)
        columns = {}
        for column in self.table.columns:
            position = next((p for p, n in self.positions.items() if n == column.name), None)
            if position is None or position >= body.shape[1]:
                columns[column.name] = pd.Series(pd.NA, index=body.index, dtype=object)
            else:
                columns[column.name] = body.iloc[:, position]
        frame = pd.DataFrame(columns)
        if not filled.all():
            frame = frame.loc[filled].reset_index(drop=True)
        return RawTable(frame=frame, rows=rows[filled], last_row=first_row + len(body) - 1)


def _filled(body: pd.DataFrame) -> np.ndarray:
    """Rows with some text in some cell. Rows of nothing but spaces pass here; the importer
    drops them as blank too."""
    filled = np.zeros(len(body), dtype=bool)
    for _, column in body.items():
        if isinstance(column.array, pd.arrays.ArrowStringArray):
            filled |= (column.str.len() > 0).to_numpy(dtype=bool, na_value=False)
        else:
            filled |= column.fillna("").to_numpy(dtype=object) != ""
    return filled


def column_letter(position: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names a column."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


# file name suffix -> (formats its content may have, what the name promises); a workbook of
# either kind reads the same, whatever its name
_WORKBOOK = frozenset({"xlsx", "xls"})
_NAMED_FORMATS = {".xlsx": (_WORKBOOK, "an xlsx workbook"), ".xlsm": (_WORKBOOK, "an xlsx workbook"),
                  ".xls": (_WORKBOOK, "an xls workbook"), ".parquet": (frozenset({"parquet"}), "a parquet file")}
_KIND_NAMES = {"xlsx": "a zip archive (as an xlsx workbook is)", "xls": "an old-style Office file",
               "parquet": "a parquet file", "csv": "neither a workbook nor parquet"}


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


def _header_key(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).strip().lower()


def read_table(path: Path, table: Table, sheet: str | None = None, chunk_rows: int = 100_000) -> TableFile:
    """Open ``path`` as contract ``table``: check and map its header; rows stream by chunk.

    Raises:
        ContractError: the file is missing, unreadable, lacks a required column, repeats a
            column, or names a sheet it does not have.
    """
    if not path.exists():
        raise ContractError(f"{path} does not exist.")
    if path.is_dir():
        raise ContractError(f"{path} is a folder, not a file.")
    kind = _sniff(path)
    named = _NAMED_FORMATS.get(path.suffix.lower())
    if named is not None and kind not in named[0]:
        # The content decides the format; but a file named as a workbook or parquet that holds
        # neither is a broken or mislabelled export, and reading it as CSV would only report
        # nonsense columns.
        raise ContractError(f"{path.name} is not {named[1]}, as its name says: its content is "
                            f"{_KIND_NAMES[kind]}.")
    encoding = None
    csv_ranges = None
    parquet_ranges = None
    if kind in ("xlsx", "xls"):
        header, bodies, sheet, total_rows = _read_excel(path, sheet, chunk_rows)
    elif sheet is not None:
        raise ContractError(f"{path.name} is not a spreadsheet workbook, so it has no sheet '{sheet}'.")
    elif kind == "parquet":
        header, parquet_ranges, total_rows = _read_parquet(path, chunk_rows)

        def bodies() -> Iterator[pd.DataFrame]:
            return (_read_parquet_range(part) for part in parquet_ranges)
    else:
        with path.open("rb") as handle:
            if b"\x00" in handle.read(65536):
                raise ContractError(f"{path.name} is not a spreadsheet (CSV, xlsx or parquet).")
        header, bodies, encoding = _read_csv(path, chunk_rows)
        total_rows = _count_lines(path) - 1
        assert encoding is not None
        csv_ranges = _csv_ranges(path, encoding, len(header), chunk_rows)

    lookup: dict[str, str] = {}
    for column in table.columns:
        lookup[column.name.lower()] = column.name
        lookup[_header_key(column.alias)] = column.name
    positions: dict[int, str] = {}
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
        positions[position] = name
        source[name] = cell.strip()
    missing = [c for c in table.columns if c.required and c.name not in seen]
    if missing:
        names = ", ".join(table.label(c.name) for c in missing)
        plural = "columns" if len(missing) > 1 else "column"
        raise ContractError(f"{path.name} lacks the required {plural} {names} of the {table.name} table.")
    return TableFile(path, table, source, ignored, sheet, encoding, total_rows, positions, bodies, csv_ranges,
                     parquet_ranges)
