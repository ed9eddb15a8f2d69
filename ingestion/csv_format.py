"""CSV files: the encoding (UTF-8 or GB18030), the header, and the records as text columns.

A byte range of whole records is parsed by Arrow where it can and by pandas otherwise; a file
whose records cannot be cut without parsing is read by pandas in one pass.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion.contracts import ContractError
from ingestion.parts import CsvRange, _wide_record


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
