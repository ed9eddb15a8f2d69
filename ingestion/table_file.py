"""Contract files as the importer sees them: the header matched to a contract table, the rows
as parts of text with spreadsheet row numbers (:func:`read_table`, :class:`TableFile`).

The format is read from the file's content; each format has its own module (``csv_format``,
``excel_format``, ``parquet_format``). A file that cannot be read as a whole raises
:class:`~ingestion.contracts.ContractError` with one sentence that names what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.contracts import ContractError, Table
from ingestion.csv_format import _read_csv_range, open_text
from ingestion.excel_format import open_workbook
from ingestion.header import FOOTER, FOOTER_SCAN_ROWS, Layout, Skipped, footer_length, header_lookup, map_header
from ingestion.parquet_format import _read_parquet, _read_parquet_range
from ingestion.parts import CsvRange, ParquetRange


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
    header_row: int = 1
    described: str = ""  # what was detected: format, encoding, delimiter, sheet
    skipped: list[Skipped] = field(default_factory=list)  # rows that are not data; a footer found on reading
    typed: bool = False  # a parquet file: every row after the header is data

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
        first_row = self.header_row + 1
        bodies = self._bodies() if self.typed else self._without_footer(self._bodies())
        for body in bodies:
            yield FilePart(self.table, self._positions, body=body, first_row=first_row)
            first_row += len(body)

    def _without_footer(self, bodies: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """``bodies`` with the footer lines at the end of the last one taken off and recorded in
        ``skipped`` (each body is held back until the next one shows it was not the last)."""
        held: pd.DataFrame | None = None
        last_row = self.header_row
        for body in bodies:
            if held is not None:
                yield held
            held = body
            last_row += len(body)
        if held is None:
            return
        tail = held.iloc[-FOOTER_SCAN_ROWS:].fillna("").astype(str).to_numpy().tolist()
        footer = footer_length(tail, self._positions, self.table)
        if footer and not any(s.why == FOOTER for s in self.skipped):
            self.skipped.append(Skipped(last_row - footer + 1, last_row, FOOTER))
        yield held.iloc[: len(held) - footer] if footer else held

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


# file name suffix -> (formats its content may have, what the name promises); a workbook of
# either kind reads the same, whatever its name
_WORKBOOK = frozenset({"xlsx", "xls"})
_NAMED_FORMATS = {
    ".xlsx": (_WORKBOOK, "an xlsx workbook"),
    ".xlsm": (_WORKBOOK, "an xlsx workbook"),
    ".xls": (_WORKBOOK, "an xls workbook"),
    ".parquet": (frozenset({"parquet"}), "a parquet file"),
}
_KIND_NAMES = {
    "xlsx": "a zip archive (as an xlsx workbook is)",
    "xls": "an old-style Office file",
    "parquet": "a parquet file",
    "csv": "neither a workbook nor parquet",
}


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


def read_table(
    path: Path,
    table: Table,
    sheet: str | None = None,
    chunk_rows: int = 100_000,
    *,
    header_spellings: Mapping[str, Sequence[str]] | None = None,
) -> TableFile:
    """Open ``path`` as contract ``table``: find and map its header; rows stream by chunk.

    ``header_spellings`` adds header names (contract column -> spellings) to the contract's own.

    Raises:
        ContractError: the file is missing, unreadable, lacks a required column, repeats a
            column, names a sheet it does not have, or has not exactly one sheet for the table.
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
        raise ContractError(f"{path.name} is not {named[1]}, as its name says: its content is {_KIND_NAMES[kind]}.")
    lookup = header_lookup(table, header_spellings)
    if kind in ("xlsx", "xls"):
        layout = open_workbook(path, table, lookup, sheet, chunk_rows, legacy=kind == "xls")
    elif sheet is not None:
        raise ContractError(f"{path.name} is not a spreadsheet workbook, so it has no sheet '{sheet}'.")
    elif kind == "parquet":
        header, parquet_ranges, total_rows = _read_parquet(path, chunk_rows)

        def bodies() -> Iterator[pd.DataFrame]:
            return (_read_parquet_range(part) for part in parquet_ranges)

        layout = Layout(header, 1, bodies, total_rows, "parquet file", parquet_ranges=parquet_ranges, typed=True)
    else:
        layout = open_text(path, table, lookup, chunk_rows)
    mapped = map_header(layout.header, table, lookup, path.name)
    return TableFile(
        path,
        table,
        mapped.source,
        mapped.ignored,
        layout.sheet,
        layout.encoding,
        layout.total_rows,
        mapped.positions,
        layout.bodies,
        layout.csv_ranges,
        layout.parquet_ranges,
        layout.header_row,
        layout.described,
        layout.skipped,
        layout.typed,
    )
