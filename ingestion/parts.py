"""Cutting a CSV or parquet file into parts that worker processes read on their own.

Owns where CSV records end (quote counting, RFC 4180), how many records each part gets
(:func:`part_sizes`), and the parts as byte ranges (CSV) or row ranges (parquet).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


@dataclass(frozen=True)
class CsvRange:
    """Whole records of a CSV file: bytes ``start`` to ``stop``, the first being ``first_row``."""

    path: Path
    encoding: str
    width: int  # columns of the header
    start: int
    stop: int
    first_row: int
    records: int | None  # records in the range; None for a last range that runs to the end of file
    unit: int  # every range but the last starts a multiple of this many records into the data
    delimiter: str = ","
    header_records: int = 1  # records up to and including the header


@dataclass(frozen=True)
class ParquetRange:
    """``length`` rows of a parquet file from row ``offset`` of row group ``row_group`` on (running
    into the following row groups when needed), the first being spreadsheet row ``first_row``."""

    path: Path
    row_group: int
    offset: int
    length: int
    first_row: int


_QUOTE, _NEWLINE, _RETURN = 34, 10, 13


def _outside_quotes(positions: np.ndarray, quotes: np.ndarray, quotes_before: int = 0) -> np.ndarray:
    """Which ``positions`` lie outside quotes: an even number of quotes (``quotes_before``
    of them earlier than the block) comes before each."""
    return (np.searchsorted(quotes, positions) + quotes_before) % 2 == 0


def _record_ends(path: Path, delimiter: str = ",") -> np.ndarray | None:
    """Byte offsets just past each record's line break, or None if that needs a real parse.

    A line break ends a record unless it is inside quotes. Counting quotes tells which is
    which as long as every quoted field is quoted the standard way (RFC 4180: the quote opens
    the field and the closing quote ends it); pandas reads any other use of a quote as a
    literal character, so such files, and files with old Mac line breaks (CR alone), return
    None and are read in one pass instead.
    """
    separator = ord(delimiter)
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
                if not np.isin(before[opening], (separator, _NEWLINE, _QUOTE)).all():
                    return None
                nexts = np.append(data[1:], np.uint8(after if after is not None else _NEWLINE))[quotes]
                if not np.isin(nexts[~opening], (separator, _NEWLINE, _RETURN, _QUOTE)).all():
                    return None
            newlines = np.flatnonzero(data == _NEWLINE)
            ends.append(newlines[_outside_quotes(newlines, quotes, quotes_before)] + offset + 1)
            quotes_before += quotes.size
            previous = int(data[-1])
            offset += len(block)
            block = following
    return np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)


def _wide_record(data: bytes, width: int, delimiter: str = ",") -> int | None:
    """Position of the first record in ``data`` (whole records, RFC 4180 quoting) with more
    fields than ``width``, or None."""
    array = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(array == _QUOTE)
    commas = np.flatnonzero(array == ord(delimiter))
    newlines = np.flatnonzero(array == _NEWLINE)
    commas = commas[_outside_quotes(commas, quotes)]
    ends = newlines[_outside_quotes(newlines, quotes)]
    fields = np.bincount(np.searchsorted(ends, commas), minlength=ends.size + 1) + 1
    wide = np.flatnonzero(fields > width)
    return int(wide[0]) if wide.size else None


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


def _csv_ranges(
    path: Path,
    encoding: str,
    delimiter: str,
    width: int,
    chunk_rows: int,
    ends: np.ndarray,
    header_records: int,
    data_end: int,
) -> list[CsvRange] | None:
    """The data records of a file, those after the header's ``header_records`` up to record
    ``data_end`` (a footer after it), cut into ranges (see :func:`part_sizes`); None when the
    file has no record after its header. ``ends`` are the records' ends (see ``_record_ends``)."""
    size = path.stat().st_size
    sizes = part_sizes(data_end - header_records, chunk_rows)
    if not sizes:
        return None

    def offset(records: int) -> int:  # where the file's first ``records`` records end
        return size if records > ends.size else int(ends[records - 1])

    ranges = []
    done = header_records
    for count in sizes:
        stop = offset(done + count)
        to_end = stop >= size
        ranges.append(
            CsvRange(
                path,
                encoding,
                width,
                offset(done),
                stop,
                done + 1,
                None if to_end else count,
                sizes[0],
                delimiter,
                header_records,
            )
        )
        done += count
        if to_end:
            break
    return ranges


def _parquet_ranges(path: Path, metadata: pq.FileMetaData, chunk_rows: int) -> list[ParquetRange]:
    """The file's rows cut into ranges (see :func:`part_sizes`), each placed in its row group."""
    group_starts = np.cumsum([0] + [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)])
    ranges = []
    start = 0
    for length in part_sizes(metadata.num_rows, chunk_rows):
        group = int(np.searchsorted(group_starts, start, side="right")) - 1  # skips empty row groups
        ranges.append(ParquetRange(path, group, start - int(group_starts[group]), length, start + 2))
        start += length
    return ranges
