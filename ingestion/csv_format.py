"""Text files (CSV and Excel's text exports): the header, footer and records as text columns.

The dialect comes from ``text_layout``. A byte range of whole records is parsed by Arrow where
it can and by pandas otherwise; a file whose records cannot be cut without parsing (or that
is UTF-16) is read by pandas in one pass.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion.contracts import ContractError, Table
from ingestion.header import FOOTER, FOOTER_SCAN_ROWS, Layout, Skipped, footer_length, rows_above
from ingestion.parts import CsvRange, _csv_ranges, _record_ends, _wide_record
from ingestion.text_layout import TextDialect, sniff_text


def _count_lines(path: Path, encoding: str) -> int:
    lines = 0
    if encoding == "utf-16":  # a line break's byte also occurs inside other characters' code units
        with path.open(encoding=encoding, newline="") as text:
            while characters := text.read(1 << 20):
                lines += characters.count("\n")
        return lines
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines


_CSV_OPTIONS = dict(header=None, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False, engine="c")


def _unreadable(path: Path, error: Exception) -> ContractError:
    detail = " ".join(str(error).split())  # pandas' messages carry line breaks
    return ContractError(f"{path.name} is not a readable CSV file: {detail}".rstrip(".") + ".")


def open_text(path: Path, table: Table, lookup: Mapping[str, str], chunk_rows: int) -> Layout:
    """A text file's dialect, header, footer and rows (see :class:`~ingestion.header.Layout`).

    Raises:
        ContractError: not text, or empty.
    """
    dialect, choice = sniff_text(path, table, lookup)
    header_records = choice.index + 1
    width = len(choice.cells)
    skipped = rows_above(choice.index)
    ranges = None
    records = None
    ends = _record_ends(path, dialect.delimiter) if dialect.encoding != "utf-16" and width else None
    if ends is not None and ends.size:
        records = ends.size + (1 if int(ends[-1]) < path.stat().st_size else 0)  # the last may lack a line break
        footer = footer_length(_tail_records(path, dialect, ends, header_records, records), choice.columns, table)
        if footer:
            skipped.append(Skipped(records - footer + 1, records, FOOTER))
        ranges = _csv_ranges(
            path, dialect.encoding, dialect.delimiter, width, chunk_rows, ends, header_records, records - footer
        )

    def bodies() -> Iterator[pd.DataFrame]:
        return _sequential_chunks(path, dialect.encoding, dialect.delimiter, width, chunk_rows, header_records)

    total = records if records is not None else _count_lines(path, dialect.encoding)
    return Layout(
        choice.cells,
        header_records,
        bodies,
        max(total - header_records, 0),
        dialect.description,
        encoding=dialect.encoding,
        skipped=skipped,
        csv_ranges=ranges,
    )


def _tail_records(
    path: Path, dialect: TextDialect, ends: np.ndarray, header_records: int, records: int
) -> list[list[str]]:
    """The last data records of the file (up to the footer search's rows), as cells."""
    first = max(header_records, records - FOOTER_SCAN_ROWS)
    if first >= records:
        return []
    with path.open("rb") as handle:
        handle.seek(int(ends[first - 1]))
        data = handle.read()
    text = data.decode(dialect.encoding, errors="replace")
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter))
    except csv.Error:
        return []  # no footer is searched where the records cannot be told apart


def _too_wide(path: Path, row: int, width: int) -> ContractError:
    return ContractError(
        f"{path.name} is not a readable CSV file: row {row} has more fields than its header ({width})."
    )


def _sequential_chunks(
    path: Path, encoding: str, delimiter: str, width: int, chunk_rows: int, header_records: int
) -> Iterator[pd.DataFrame]:
    """The records after the header of a text file in chunks of ``chunk_rows``, read in one pass
    by pandas.

    A record with more fields than the header refuses the file. pandas alone would not always
    say so: a record that opens a chunk it cuts to the expected fields, or (the first one) reads
    as an index that shifts the columns. So it reads one column more than the header has: any
    text there, an index, or pandas' own refusal of a record wider still, marks such a record.
    """
    try:
        reader = pd.read_csv(
            path,
            skiprows=header_records,
            chunksize=chunk_rows,
            names=range(width + 1),
            encoding=encoding,
            sep=delimiter,
            **_CSV_OPTIONS,
        )
        before = header_records + 1  # the spreadsheet row of the first record read
        for chunk in reader:
            if not isinstance(chunk.index, pd.RangeIndex):
                raise _too_wide(path, before, width)
            wide = np.flatnonzero(chunk[width].fillna("").to_numpy(dtype=object) != "")
            if wide.size:
                raise _too_wide(path, before + int(wide[0]), width)
            yield chunk.drop(columns=width)
            before += len(chunk)
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as error:
        found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(error))
        if found:
            raise ContractError(
                f"{path.name} is not a readable CSV file: line {found[1]} has {found[2]} fields, "
                f"more than its header ({width})."
            ) from error
        raise _unreadable(path, error) from error


def _read_csv_range(part: CsvRange) -> pd.DataFrame:
    """The records of one byte range as text, exactly as a full read of the file gives them."""
    with part.path.open("rb") as handle:
        handle.seek(part.start)
        data = handle.read(part.stop - part.start)
    body = _read_csv_arrow(data, part) if part.encoding == "utf-8-sig" and part.width > 1 else None
    if body is not None:
        return body
    wide = _wide_record(data, part.width, part.delimiter)
    if wide is not None:
        raise _too_wide(part.path, part.first_row + wide, part.width)
    try:
        body = pd.read_csv(
            io.BytesIO(data), names=range(part.width), encoding=part.encoding, sep=part.delimiter, **_CSV_OPTIONS
        )
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

    The ranges hold only RFC 4180 quoting and LF or CRLF line breaks (see ``parts._record_ends``);
    there Arrow reads as pandas does (every cell as written, ``""`` for an empty one, a blank
    line as a row of empty cells). Arrow refuses a record whose field count is not the
    header's, where pandas has rules of its own.
    """
    names = [str(i) for i in range(part.width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
            parse_options=pacsv.ParseOptions(
                delimiter=part.delimiter, newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if part.records is not None and table.num_rows != part.records:
        return None
    return pd.DataFrame(
        {i: pd.arrays.ArrowStringArray(table.column(i).cast(pa.large_string())) for i in range(part.width)}
    )


def _read_csv_in_one_pass(part: CsvRange) -> pd.DataFrame:
    """The range's records out of a sequential read of the whole file (slow; for odd files only)."""
    first = (part.first_row - part.header_records - 1) // part.unit
    last = None if part.records is None else first + -(-part.records // part.unit)
    wanted = []
    chunks = _sequential_chunks(part.path, part.encoding, part.delimiter, part.width, part.unit, part.header_records)
    for index, chunk in enumerate(chunks):
        if last is not None and index >= last:
            break
        if index >= first:
            wanted.append(chunk)
    if not wanted:
        raise AssertionError(f"{part.path.name}: no records from row {part.first_row}")  # a bug
    body = pd.concat(wanted, ignore_index=True)
    return body if part.records is None else body.iloc[: part.records]
