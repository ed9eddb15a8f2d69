"""Reading contract files (CSV, xlsx/xls, parquet) into rows of text with spreadsheet row numbers.

A file that cannot be read as a whole raises :class:`ContractError` with one sentence that
names what is wrong; nothing downstream runs.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion.contracts import Table


class ContractError(Exception):
    """A file that cannot be imported as a whole; the message is one sentence for a user."""


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

        A CSV file whose records can be told apart without parsing (see ``_csv_ranges``) is
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


@dataclass(frozen=True)
class CsvRange:
    """Whole records of a CSV file: bytes ``start`` to ``stop``, the first being ``first_row``."""

    path: Path
    encoding: str
    width: int  # columns of the header
    start: int
    stop: int
    first_row: int
    records: int | None  # records in the range; None for the last range (to the end of file)
    unit: int  # every range but the last starts a multiple of this many records into the file


@dataclass(frozen=True)
class ParquetRange:
    """``length`` rows of a parquet file from row ``offset`` of row group ``row_group`` on (running
    into the following row groups when needed), the first being spreadsheet row ``first_row``."""

    path: Path
    row_group: int
    offset: int
    length: int
    first_row: int


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


def _cell_text(value: object) -> str:
    """Canonical text of a typed cell (xlsx or parquet) before parsing."""
    if value is None or value is pd.NaT or value is pd.NA:  # NaT, NA: empty cells of typed columns
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if float(value).is_integer() and abs(float(value)) < 1e15:
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


def _csv_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) per the contract; GB18030 from older Excel exports."""
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return "utf-8-sig" if encoding == "utf-8" else encoding
    raise ContractError(f"{path.name} is not text in UTF-8 or GB18030: it is not a CSV file.")


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines


_CSV_OPTIONS = dict(header=None, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False, engine="c")


def _unreadable(path: Path, error: Exception) -> ContractError:
    detail = " ".join(str(error).split())  # pandas' messages carry line breaks
    return ContractError(f"{path.name} is not a readable CSV file: {detail}".rstrip(".") + ".")


def _read_csv(path: Path, chunk_rows: int) -> tuple[list[str], Callable[[], Iterator[pd.DataFrame]], str]:
    encoding = _csv_encoding(path)
    options = dict(_CSV_OPTIONS, encoding=encoding)
    try:
        head = pd.read_csv(path, nrows=1, **options)
    except pd.errors.EmptyDataError as error:
        raise ContractError(f"{path.name} is empty.") from error
    except pd.errors.ParserError as error:
        raise _unreadable(path, error) from error
    header = [str(cell) for cell in head.iloc[0].tolist()]

    def bodies() -> Iterator[pd.DataFrame]:
        return _sequential_chunks(path, encoding, len(header), chunk_rows)

    return header, bodies, encoding


def _too_wide(path: Path, row: int, width: int) -> ContractError:
    return ContractError(f"{path.name} is not a readable CSV file: row {row} has more fields than its header "
                         f"({width}).")


def _sequential_chunks(path: Path, encoding: str, width: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The data records of a CSV file in chunks of ``chunk_rows``, read in one pass by pandas.

    A record with more fields than the header refuses the file. pandas alone would not always
    say so: a record that opens a chunk it cuts to the expected fields, or (the first one) reads
    as an index that shifts the columns. So it reads one column more than the header has: any
    text there, an index, or pandas' own refusal of a record wider still, marks such a record.
    """
    try:
        reader = pd.read_csv(path, skiprows=1, chunksize=chunk_rows, names=range(width + 1), encoding=encoding,
                             **_CSV_OPTIONS)
        before = 0
        for chunk in reader:
            if not isinstance(chunk.index, pd.RangeIndex):
                raise _too_wide(path, before + 2, width)
            wide = np.flatnonzero(chunk[width].fillna("").to_numpy(dtype=object) != "")
            if wide.size:
                raise _too_wide(path, before + 2 + int(wide[0]), width)
            yield chunk.drop(columns=width)
            before += len(chunk)
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as error:
        found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(error))
        if found:
            raise ContractError(f"{path.name} is not a readable CSV file: line {found[1]} has {found[2]} fields, "
                                f"more than its header ({width}).") from error
        raise _unreadable(path, error) from error


def _wide_record(data: bytes, width: int) -> int | None:
    """Position of the first record in ``data`` (whole records, RFC 4180 quoting) with more
    fields than ``width``, or None."""
    array = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(array == _QUOTE)
    commas = np.flatnonzero(array == _COMMA)
    newlines = np.flatnonzero(array == _NEWLINE)
    commas = commas[_outside_quotes(commas, quotes)]
    ends = newlines[_outside_quotes(newlines, quotes)]
    fields = np.bincount(np.searchsorted(ends, commas), minlength=ends.size + 1) + 1
    wide = np.flatnonzero(fields > width)
    return int(wide[0]) if wide.size else None


_QUOTE, _NEWLINE, _RETURN, _COMMA = 34, 10, 13, 44


def _outside_quotes(positions: np.ndarray, quotes: np.ndarray, quotes_before: int = 0) -> np.ndarray:
    """Which ``positions`` lie outside quotes: an even number of quotes (``quotes_before``
    of them earlier than the block) comes before each."""
    return (np.searchsorted(quotes, positions) + quotes_before) % 2 == 0


def _record_ends(path: Path) -> np.ndarray | None:
    """Byte offsets just past each record's line break, or None if that needs a real parse.

    A line break ends a record unless it is inside quotes. Counting quotes tells which is
    which as long as every quoted field is quoted the standard way (RFC 4180: the quote opens
    the field and the closing quote ends it); pandas reads any other use of a quote as a
    literal character, so such files, and files with old Mac line breaks (CR alone), return
    None and are read in one pass instead.
    """
    ends: list[np.ndarray] = []
    quotes_before = 0
    offset = 0
    previous = _NEWLINE  # the byte before the block: a record starts at the top of the file
    with path.open("rb") as handle:
        head = handle.read(3)
        if head == codecs.BOM_UTF8:
            offset = 3
        handle.seek(offset)
        block = handle.read(1 << 24)
        while block:
            following = handle.read(1 << 24)
            data = np.frombuffer(block, dtype=np.uint8)
            after = following[0] if following else None
            returns = np.flatnonzero(data == _RETURN)
            if returns.size:
                nexts = np.append(data[1:], np.uint8(after if after is not None else 0))[returns]
                if (nexts != _NEWLINE).any():
                    return None
            quotes = np.flatnonzero(data == _QUOTE)
            if quotes.size:
                opening = (np.arange(quotes.size) + quotes_before) % 2 == 0
                before = np.where(quotes > 0, data[np.maximum(quotes - 1, 0)], previous)
                if not np.isin(before[opening], (_COMMA, _NEWLINE, _QUOTE)).all():
                    return None
                nexts = np.append(data[1:], np.uint8(after if after is not None else _NEWLINE))[quotes]
                if not np.isin(nexts[~opening], (_COMMA, _NEWLINE, _RETURN, _QUOTE)).all():
                    return None
            newlines = np.flatnonzero(data == _NEWLINE)
            ends.append(newlines[_outside_quotes(newlines, quotes, quotes_before)] + offset + 1)
            quotes_before += quotes.size
            previous = int(data[-1])
            offset += len(block)
            block = following
    return np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)


def part_sizes(records: int, chunk_rows: int) -> list[int]:
    """How many records each part of a file of ``records`` gets: about ``chunk_rows``, except
    the first part and those of the last three ``chunk_rows``, which get a quarter of that.

    A small first part starts the writer early; small last parts leave it little to store
    after the workers have finished, while one CPU core idles. Every part but the last
    starts a multiple of the quarter into the file. A file of one ``chunk_rows`` is one part.
    """
    if records <= chunk_rows:
        return [records] if records else []
    unit = max(1, chunk_rows // 4)
    sizes: list[int] = []
    left = records
    while left > 0:
        size = unit if not sizes or left <= 3 * 4 * unit else 4 * unit
        sizes.append(min(size, left))
        left -= sizes[-1]
    return sizes


def _csv_ranges(path: Path, encoding: str, width: int, chunk_rows: int) -> list[CsvRange] | None:
    """The file's data records cut into ranges (see :func:`part_sizes`), or None (see
    ``_record_ends``)."""
    ends = _record_ends(path)
    if ends is None or ends.size == 0:
        return None
    size = path.stat().st_size
    records = ends.size - 1 + (1 if int(ends[-1]) < size else 0)  # the last may lack a line break
    sizes = part_sizes(records, chunk_rows)
    ranges = []
    start, first_row, position = int(ends[0]), 2, 0  # ends[0] closes the header
    for count in sizes:
        position += count
        last = position >= ends.size - 1 or int(ends[position]) >= size
        stop = size if last else int(ends[position])
        ranges.append(CsvRange(path, encoding, width, start, stop, first_row, None if last else count, sizes[0]))
        if last:
            break
        start, first_row = stop, first_row + count
    return ranges


def _read_csv_range(part: CsvRange) -> pd.DataFrame:
    """The records of one byte range as text, exactly as a full read of the file gives them."""
    with part.path.open("rb") as handle:
        handle.seek(part.start)
        data = handle.read(part.stop - part.start)
    body = _read_csv_arrow(data, part) if part.encoding == "utf-8-sig" and part.width > 1 else None
    if body is not None:
        return body
    wide = _wide_record(data, part.width)
    if wide is not None:
        raise _too_wide(part.path, part.first_row + wide, part.width)
    try:
        body = pd.read_csv(io.BytesIO(data), names=range(part.width), encoding=part.encoding, **_CSV_OPTIONS)
    except pd.errors.EmptyDataError:
        body = pd.DataFrame(columns=range(part.width), dtype=object)
    except pd.errors.ParserError:
        return _read_csv_in_one_pass(part)
    if not isinstance(body.index, pd.RangeIndex):  # a bug: _wide_record has found no such record
        raise AssertionError(f"{part.path.name}: a record wider than the header from row {part.first_row} on")
    if part.records is not None and len(body) != part.records:
        raise AssertionError(f"{part.path.name}: {len(body)} records in a range of {part.records}")  # a bug
    return body


def _read_csv_arrow(data: bytes, part: CsvRange) -> pd.DataFrame | None:
    """The records of a range of a UTF-8 file parsed by Arrow (several times faster than pandas),
    as Arrow-backed text columns; None where Arrow refuses them and pandas decides.

    The ranges hold only RFC 4180 quoting and LF or CRLF line breaks (see ``_record_ends``);
    there Arrow reads as pandas does (every cell as written, ``""`` for an empty one, a blank
    line as a row of empty cells). Arrow refuses a record whose field count is not the
    header's, where pandas has rules of its own.
    """
    names = [str(i) for i in range(part.width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None
    if part.records is not None and table.num_rows != part.records:
        return None
    return pd.DataFrame({i: pd.arrays.ArrowStringArray(table.column(i).cast(pa.large_string()))
                         for i in range(part.width)})


def _read_csv_in_one_pass(part: CsvRange) -> pd.DataFrame:
    """The range's records out of a sequential read of the whole file (slow; for odd files only)."""
    first = (part.first_row - 2) // part.unit
    last = None if part.records is None else first + -(-part.records // part.unit)
    wanted = []
    for index, chunk in enumerate(_sequential_chunks(part.path, part.encoding, part.width, part.unit)):
        if last is not None and index >= last:
            break
        if index >= first:
            wanted.append(chunk)
    if not wanted:
        raise AssertionError(f"{part.path.name}: no records from row {part.first_row}")  # a bug
    body = pd.concat(wanted, ignore_index=True)
    return body if part.records is None else body.iloc[: part.records]


def _read_excel(
    path: Path, sheet: str | None, chunk_rows: int
) -> tuple[list[str], Callable[[], Iterator[pd.DataFrame]], str, int]:
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
    header = [_cell_text(cell) for cell in grid[0]] + [""] * (width - len(grid[0]))

    def bodies() -> Iterator[pd.DataFrame]:
        for start in range(1, len(grid), chunk_rows):
            text = [[_cell_text(cell) for cell in row] + [""] * (width - len(row))
                    for row in grid[start : start + chunk_rows]]
            yield pd.DataFrame(text, columns=range(width), dtype=object)

    return header, bodies, sheet, len(grid) - 1


def _read_parquet(path: Path, chunk_rows: int) -> tuple[list[str], list[ParquetRange], int]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for damaged files
        raise ContractError(f"{path.name} is not a readable parquet file ({error}).") from error
    header = [str(name) for name in parquet.schema_arrow.names]
    metadata = parquet.metadata
    group_starts = np.cumsum([0] + [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)])
    ranges = []
    start = 0
    for length in part_sizes(metadata.num_rows, chunk_rows):
        group = int(np.searchsorted(group_starts, start, side="right")) - 1  # skips empty row groups
        ranges.append(ParquetRange(path, group, start - int(group_starts[group]), length, start + 2))
        start += length
    return header, ranges, metadata.num_rows


_last_row_group: dict[tuple[str, int, int, int], pa.Table] = {}  # this process's last row group read


def _row_group(path: Path, index: int) -> pa.Table:
    """Row group ``index`` of ``path``, kept until another is read: decoding a row group costs the
    same whatever part of it is wanted, and consecutive parts mostly share one."""
    status = path.stat()
    key = (str(path), status.st_size, status.st_mtime_ns, index)
    table = _last_row_group.get(key)
    if table is None:
        _last_row_group.clear()  # free the previous one before decoding the next
        table = pq.ParquetFile(path).read_row_group(index)
        _last_row_group[key] = table
    return table


def _read_parquet_range(part: ParquetRange) -> pd.DataFrame:
    """The rows of one parquet range as text, exactly as reading the file in one pass gives them."""
    pieces = []
    group, offset, wanted = part.row_group, part.offset, part.length
    while wanted > 0:
        piece = _row_group(part.path, group).slice(offset, wanted)
        pieces.append(piece)
        group, offset, wanted = group + 1, 0, wanted - piece.num_rows
    return _parquet_text(pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0])


def _parquet_text(table: pa.Table) -> pd.DataFrame:
    """The columns pandas makes of ``table``, each cell as :func:`_cell_text` writes it.

    The columns are those of ``table.to_pandas()`` (an index pandas stored is not one); a
    column that becomes one of pandas' own types (categories, or nullable integers when the
    file's pandas metadata asks for them) goes through ``to_pandas`` and ``_cell_text`` per cell.
    """
    shape = table.schema.empty_table().to_pandas()
    names = list(shape.columns)
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n in table.schema.names for n in names):
        frame = table.to_pandas()
        return pd.DataFrame({i: [_cell_text(v) for v in frame[c].tolist()] for i, c in enumerate(frame.columns)},
                            dtype=object)
    frame = None
    columns: dict[int, list[str] | np.ndarray] = {}
    for i, name in enumerate(names):
        if pd.api.types.is_extension_array_dtype(shape.dtypes[name]):
            frame = table.to_pandas() if frame is None else frame
            columns[i] = [_cell_text(v) for v in frame[name].tolist()]
        else:
            columns[i] = _column_text(table.column(name))
    return pd.DataFrame(columns, dtype=object)


_DAY_1000, _DAY_9999 = (np.datetime64(d, "D").astype(np.int64) for d in ("1000-01-01", "9999-12-31"))


def _column_text(column: pa.ChunkedArray) -> np.ndarray:
    """``_cell_text`` of each cell, computed for the whole column where that gives the same text.

    Integers: pandas turns a column with nulls into doubles, whose text is the integer's below
    1e15. Decimals of up to 6 places: Python writes them without an exponent, as Arrow does.
    Dates and naive timestamps of years 1000 to 9999: ISO text to the second (the fraction
    dropped, as ``strftime`` does). Doubles: see :func:`_double_text`. Any other type (time
    zones, lists, ...) goes per value.
    """
    kind = column.type
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
            or pa.types.is_integer(kind) and _below(column, 1e15)
            or pa.types.is_decimal(kind) and 0 <= kind.scale <= 6):
        return pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
    if pa.types.is_date32(kind):
        days = pc.min_max(column.cast(pa.int32()))
        if days["min"].as_py() is None or (days["min"].as_py() >= _DAY_1000 and days["max"].as_py() <= _DAY_9999):
            return pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
    elif pa.types.is_timestamp(kind) and kind.tz is None:
        # Floored to the second, as are the calendar fields strftime writes.
        ticks = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        known = column.is_valid().to_numpy(zero_copy_only=False)
        per_second = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}[kind.unit]
        seconds = np.floor_divide(ticks[known], per_second)
        if seconds.size == 0 or (seconds.min() >= _DAY_1000 * 86400 and seconds.max() < (_DAY_9999 + 1) * 86400):
            text = np.full(len(column), "", dtype=object)
            moments = pa.array(seconds, pa.timestamp("s"))
            text[known] = pc.cast(moments, pa.string()).to_numpy(zero_copy_only=False)  # "YYYY-MM-DD hh:mm:ss"
            return text
    elif pa.types.is_floating(kind) and not pa.types.is_float16(kind):
        return _double_text(column)
    return np.array([_cell_text(v) for v in column.to_pandas().tolist()], dtype=object)


def _double_text(column: pa.ChunkedArray) -> np.ndarray:
    """``_cell_text`` of doubles: whole ones below 1e15 as integers, the rest rounded to 9 places.

    Below 1e3, x * 1e9 is within 1e-4 of its exact value, so when its fraction is not near a
    half, rint(x * 1e9) / 1e9 is the double Python's correctly rounded ``round(x, 9)`` gives.
    Below 4e6 a double whose shortest text has at most 9 decimals is already rounded (its ulp is
    under 1e-9). From 1e-4 on Python writes these in their shortest digits without an
    exponent, as Arrow's cast to string does. Other values go per value.
    """
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)  # NaN for nulls
    text = np.full(len(values), "", dtype=object)
    known = ~np.isnan(values)
    magnitude = np.where(known, np.abs(values), 0.0)
    whole = known & (magnitude < 1e15) & (values == np.floor(values))
    text[whole] = values[whole].astype(np.int64).astype(str).astype(object)
    near = np.flatnonzero(known & ~whole & (magnitude < 4e6))
    scaled = values[near] * 1e9
    clear = (magnitude[near] < 1e3) & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-3)
    rounded = np.where(clear, np.rint(scaled) / 1e9, values[near])
    shortest = pc.cast(pa.array(rounded), pa.string())
    point = pc.find_substring(shortest, ".")
    decimals = pc.subtract(pc.utf8_length(shortest), pc.add(point, 1))
    plain = pc.and_(pc.and_(pc.invert(pc.match_substring(shortest, "e")), pc.greater_equal(point, 0)),
                    pc.less_equal(decimals, 9)).to_numpy(zero_copy_only=False) & (np.abs(rounded) >= 1e-4)
    text[near[plain]] = shortest.filter(pa.array(plain)).to_numpy(zero_copy_only=False)
    rest = known & ~whole
    rest[near[plain]] = False
    text[rest] = [_cell_text(v) for v in values[rest].tolist()]
    return text


def _below(column: pa.ChunkedArray, bound: float) -> bool:
    """Whether a column has no nulls or every value's magnitude is below ``bound``."""
    if column.null_count == 0:
        return True
    extremes = pc.min_max(column)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    return low is None or (-bound < low and high < bound)


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
