"""Where a bank's sheet or text file keeps its header, and what lies around its data.

Owns the header row found among the first rows (:func:`find_header`: the row that names the
most contract columns, in English, Chinese or a configured spelling), the header's cells
matched to contract columns (:func:`map_header`), and the lines that are not data: those above
the header (titles, notes, blank lines) and the footer after the data (totals, signatures),
which are skipped and reported (:class:`Skipped`, :func:`footer_length`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingestion.contracts import ContractError, Table

if TYPE_CHECKING:
    import pandas as pd

    from ingestion.parts import CsvRange, ParquetRange

HEADER_SCAN_ROWS = 30  # rows of a sheet or text file searched for the header
FOOTER_SCAN_ROWS = 20  # rows at the end of the data searched for footer lines

ABOVE_HEADER = "above the header: title, notes or blank lines"
FOOTER = "footer after the data: totals, signatures, notes"
_SPACE = re.compile(r"\s+")
_ENCLOSED = re.compile(r"^[\[【〔〖《<(](.+)[\]】〕〗》>)]$")
_NOTE = re.compile(r"^(.+?)[\[【〔〖(][^\[\]【】〔〕〖〗()]*[\]】〕〗)]$")  # 本金(元), 身份证号【18位】
_MARKS = "*※:："  # a required-column star, a trailing colon
_FOOTER = re.compile(
    r"^(?:合计|总计|小计|共计|汇总|总额|制表|审核|复核|经办|负责人|备注|说明|注:|打印|导出|截至"
    r"|数据截至|(?:grand)?total(?![a-z0-9])|subtotal(?![a-z0-9]))"
)


def header_key(cell: str) -> str:
    """A header cell as compared with the contract's names: full-width forms folded, spaces and
    case ignored, enclosing brackets and a bracketed note (a unit, a hint) dropped."""
    text = _SPACE.sub("", unicodedata.normalize("NFKC", cell)).lower().strip(_MARKS)
    enclosed = _ENCLOSED.match(text)
    if enclosed:
        text = enclosed[1]
    noted = _NOTE.match(text)
    if noted:
        text = noted[1]
    return text.strip(_MARKS)


def header_lookup(table: Table, spellings: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Header key -> contract column: English names (with or without underscores), Chinese
    aliases, and the configured spellings (contract column -> header spellings)."""
    lookup: dict[str, str] = {}
    for column in table.columns:
        for spelling in (
            column.name,
            column.name.replace("_", ""),
            column.alias,
            *(spellings or {}).get(column.name, ()),
        ):
            lookup.setdefault(header_key(spelling), column.name)
    return lookup


@dataclass(frozen=True)
class HeaderChoice:
    """The header found in a sheet or file: its index among the rows read, the contract columns it
    names (by cell position), and the required columns it lacks."""

    index: int
    cells: list[str]
    columns: dict[int, str]
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def find_header(rows: Sequence[Sequence[str]], table: Table, lookup: Mapping[str, str]) -> HeaderChoice:
    """The row among the first :data:`HEADER_SCAN_ROWS` that names the most contract columns (the
    earliest of equals); the first row when none names any."""
    best: tuple[int, int] | None = None
    best_index = 0
    for index, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        names = {lookup.get(header_key(cell)) for cell in row} - {None}
        score = (sum(1 for c in table.columns if c.required and c.name in names), len(names))
        if score[1] and (best is None or score > best):
            best, best_index = score, index
    cells = [str(cell) for cell in rows[best_index]] if rows else []
    columns: dict[int, str] = {}
    for position, cell in enumerate(cells):
        name = lookup.get(header_key(cell))
        if name is not None and name not in columns.values():
            columns[position] = name
    missing = [c.name for c in table.columns if c.required and c.name not in columns.values()]
    return HeaderChoice(best_index, cells, columns, missing)


def lacks_sentence(file_name: str, table: Table, missing: Sequence[str]) -> str:
    """``pool.csv lacks the required column principal (本金) of the cases table.``"""
    names = ", ".join(table.label(name) for name in missing)
    plural = "columns" if len(missing) > 1 else "column"
    return f"{file_name} lacks the required {plural} {names} of the {table.name} table."


@dataclass
class HeaderMap:
    """The header's cells matched to the contract: file position -> contract column, contract
    column -> the header as written, and the header cells that name no contract column."""

    positions: dict[int, str]
    source: dict[str, str]
    ignored: list[str] = field(default_factory=list)


def map_header(header: Sequence[str], table: Table, lookup: Mapping[str, str], file_name: str) -> HeaderMap:
    """Match each header cell to a contract column.

    Raises:
        ContractError: a column appears twice, or a required column is missing.
    """
    mapped = HeaderMap({}, {})
    seen: dict[str, int] = {}
    for position, cell in enumerate(header):
        name = lookup.get(header_key(cell))
        if name is None:
            if cell.strip():
                mapped.ignored.append(cell.strip())
            continue
        if name in seen:
            first, second = column_letter(seen[name]), column_letter(position)
            raise ContractError(
                f"Column {table.label(name)} appears twice in {file_name} (columns {first} and {second})."
            )
        seen[name] = position
        mapped.positions[position] = name
        mapped.source[name] = cell.strip()
    missing = [c.name for c in table.columns if c.required and c.name not in seen]
    if missing:
        raise ContractError(lacks_sentence(file_name, table, missing))
    return mapped


def column_letter(position: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names a column."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


@dataclass(frozen=True)
class Skipped:
    """Spreadsheet rows ``first`` to ``last`` that are not data, and why (``above the header``,
    ``footer after the data``)."""

    first: int
    last: int
    why: str


def rows_above(header_index: int) -> list[Skipped]:
    """The rows above a header found at ``header_index`` (0-based), as skipped rows."""
    return [Skipped(1, header_index, ABOVE_HEADER)] if header_index else []


def _is_footer(cells: Sequence[str], key_positions: Sequence[int]) -> bool:
    filled = [cell.strip() for cell in cells if cell.strip()]
    if not filled:
        return True  # a blank line within the footer
    if _FOOTER.match(_SPACE.sub("", unicodedata.normalize("NFKC", filled[0])).lower()):
        return True
    keyless = all(position >= len(cells) or not cells[position].strip() for position in key_positions)
    return keyless and len(filled) <= 2


def footer_length(tail: Sequence[Sequence[str]], positions: Mapping[int, str], table: Table) -> int:
    """How many of the last rows of ``tail`` are footer lines (blank lines among and after them
    included): rows after the data that begin with a word such as 合计, 制表 or 备注, or that hold
    no key column and at most two cells."""
    key_positions = [p for p, name in positions.items() if name in table.key]
    count = 0
    for cells in reversed(tail[-FOOTER_SCAN_ROWS:]):
        if not _is_footer([str(cell) for cell in cells], key_positions):
            break
        count += 1
    # Trailing blank rows alone are not a footer: they stay blank rows of the data.
    while count and not any(str(cell).strip() for cell in tail[len(tail) - count]):
        count -= 1
    return count


@dataclass
class Layout:
    """Where a file's header and data lie, as a format's reader found them.

    ``bodies`` gives the rows after the header to the end of the file (a footer included: see
    ``TableFile.parts``); ``csv_ranges`` or ``parquet_ranges``, when a file can be cut without
    parsing, the data rows alone. ``described`` says what was detected, for the report.
    """

    header: list[str]
    header_row: int  # spreadsheet row of the header (1-based)
    bodies: Callable[[], Iterator[pd.DataFrame]]
    total_rows: int  # rows after the header, blank ones included (for progress)
    described: str
    sheet: str | None = None
    encoding: str | None = None
    skipped: list[Skipped] = field(default_factory=list)
    csv_ranges: list[CsvRange] | None = None
    parquet_ranges: list[ParquetRange] | None = None
    typed: bool = False  # written by a program (parquet): no title, no footer
