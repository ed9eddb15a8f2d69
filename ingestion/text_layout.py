"""Text files as banks send them: the encoding and the delimiter, both read from the content.

Owns the encodings (UTF-8 with or without BOM, GB18030/GBK, UTF-16 with BOM: Excel's "Unicode
text"), the delimiters (comma, tab, semicolon: the one under which a row names the most
contract columns) and the file's first records, parsed for the header search.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ingestion.contracts import ContractError, Table
from ingestion.header import HEADER_SCAN_ROWS, HeaderChoice, find_header

DELIMITERS = {",": "comma-separated", "\t": "tab-separated", ";": "semicolon-separated"}
_HEAD_BYTES = 1 << 20  # enough for the header search's rows in any sane file


@dataclass(frozen=True)
class TextDialect:
    """How a text file is written: Python codec, what to call it in a report, the delimiter."""

    encoding: str  # utf-8-sig (with or without BOM), gb18030 or utf-16
    label: str
    delimiter: str

    @property
    def description(self) -> str:
        """``UTF-8 with BOM, comma-separated``."""
        return f"{self.label}, {DELIMITERS[self.delimiter]}"


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def text_encoding(path: Path) -> tuple[str, str]:
    """(Python codec, label) of a text file, by its byte-order mark or else by what decodes it.

    Raises:
        ContractError: the file holds NUL bytes without a UTF-16 mark (a binary file), or is
            not text in any of the encodings.
    """
    with path.open("rb") as handle:
        head = handle.read(65536)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        order = "LE" if head.startswith(codecs.BOM_UTF16_LE) else "BE"
        if not _decodes(path, "utf-16"):
            raise ContractError(f"{path.name} starts as UTF-16 text but is not: it is not a readable text file.")
        return "utf-16", f"UTF-16{order} with BOM"
    if b"\x00" in head:
        raise ContractError(f"{path.name} is not a spreadsheet (CSV, text, xlsx, xls or parquet).")
    if _decodes(path, "utf-8"):
        return "utf-8-sig", "UTF-8 with BOM" if head.startswith(codecs.BOM_UTF8) else "UTF-8"
    if _decodes(path, "gb18030"):
        return "gb18030", "GB18030/GBK"
    raise ContractError(f"{path.name} is not text in UTF-8, GB18030 or UTF-16: it is not a CSV file.")


def head_records(path: Path, encoding: str, delimiter: str, limit: int) -> tuple[list[list[str]], bool]:
    """The first ``limit`` records of a text file as cells, and whether they are all it has."""
    with path.open("rb") as handle:
        data = handle.read(_HEAD_BYTES)
        whole = not handle.read(1)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(data, final=whole)
    records = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for record in reader:
            records.append(record)
            if len(records) > limit:
                break
    except csv.Error:
        pass  # the real reader says what is wrong with the file; the search keeps what it read
    if not whole and len(records) <= limit and records:
        records.pop()  # may be cut short by the end of the block read
    return records[:limit], whole and len(records) <= limit


def sniff_text(path: Path, table: Table, lookup: Mapping[str, str]) -> tuple[TextDialect, HeaderChoice]:
    """The file's dialect and its header: among the delimiters, the one under which a row of the
    first :data:`~ingestion.header.HEADER_SCAN_ROWS` names the most contract columns (comma
    when none does).

    Raises:
        ContractError: not text (see :func:`text_encoding`) or empty.
    """
    encoding, label = text_encoding(path)
    best: tuple[tuple[int, int], str, HeaderChoice] | None = None
    for delimiter in DELIMITERS:
        rows, _ = head_records(path, encoding, delimiter, HEADER_SCAN_ROWS)
        if not rows:
            raise ContractError(f"{path.name} is empty.")
        choice = find_header(rows, table, lookup)
        required = sum(1 for c in table.columns if c.required)
        score = (required - len(choice.missing), len(choice.columns))
        if best is None or score > best[0]:
            best = (score, delimiter, choice)
    assert best is not None
    return TextDialect(encoding, label, best[1]), best[2]
