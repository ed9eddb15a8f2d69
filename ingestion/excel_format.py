"""Excel workbooks (xlsx, xlsm and legacy xls): the sheet that holds the table, its header and
rows as text, merged cells read as their value.

Without ``--sheet`` the one sheet whose header names the table's required columns is taken;
several such sheets, or none, refuse the file with the sheets named. Read by calamine,
imported only when a workbook is opened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ingestion.cell_text import _cell_text
from ingestion.contracts import ContractError, Table
from ingestion.header import HEADER_SCAN_ROWS, HeaderChoice, Layout, find_header, lacks_sentence, rows_above


def _grid(workbook: Any, name: str) -> list[list[Any]]:
    """A sheet's cells from A1 on, every merged area filled with its top-left value (as a
    person reads a merged cell: one value over the whole area)."""
    sheet = workbook.get_sheet_by_name(name)
    grid = sheet.to_python(skip_empty_area=False)
    for (top, left), (bottom, right) in sheet.merged_cell_ranges or ():
        if top >= len(grid) or left >= len(grid[top]):
            continue
        value = grid[top][left]
        for r in range(top, bottom + 1):
            while len(grid) <= r:
                grid.append([])
            row = grid[r]
            if len(row) <= right:
                row.extend([""] * (right + 1 - len(row)))
            for c in range(left, right + 1):
                row[c] = value
    return grid


def _header(grid: list[list[Any]], table: Table, lookup: Mapping[str, str]) -> HeaderChoice:
    return find_header([[_cell_text(cell) for cell in row] for row in grid[:HEADER_SCAN_ROWS]], table, lookup)


def _choose_sheet(
    path: Path, workbook: Any, table: Table, lookup: Mapping[str, str]
) -> tuple[str, list[list[Any]], HeaderChoice]:
    """The one sheet whose header names every required column of ``table``."""
    found: dict[str, tuple[list[list[Any]], HeaderChoice]] = {}
    lacking: dict[str, list[str]] = {}
    for name in workbook.sheet_names:
        grid = _grid(workbook, name)
        choice = _header(grid, table, lookup)
        if choice.complete:
            found[name] = (grid, choice)
        else:
            lacking[name] = choice.missing
    if len(found) == 1:
        name, (grid, choice) = next(iter(found.items()))
        return name, grid, choice
    if found:
        names = ", ".join(f"'{name}'" for name in found)
        raise ContractError(
            f"{path.name} has several sheets with the columns of the {table.name} table ({names}): "
            f"name the one to import with --sheet."
        )
    if len(lacking) == 1:
        raise ContractError(lacks_sentence(path.name, table, next(iter(lacking.values()))))
    what = "; ".join(
        f"sheet '{name}' lacks {', '.join(table.label(c) for c in missing)}" for name, missing in lacking.items()
    )
    raise ContractError(
        f"No sheet of {path.name} has the columns of the {table.name} table ({what}): "
        f"name the sheet with --sheet and check its header row."
    )


def open_workbook(
    path: Path, table: Table, lookup: Mapping[str, str], sheet: str | None, chunk_rows: int, legacy: bool = False
) -> Layout:
    """The table's sheet of a workbook: its header and rows (see :class:`~ingestion.header.Layout`).

    Raises:
        ContractError: unreadable, no sheets, no sheet named ``sheet``, an empty sheet, or not
            exactly one sheet with the table's columns.
    """
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as error:  # calamine raises its own error types per format
        raise ContractError(f"{path.name} is not a readable spreadsheet ({error}).") from error
    names = workbook.sheet_names
    if not names:
        raise ContractError(f"{path.name} has no sheets.")
    if sheet is not None and sheet not in names:
        raise ContractError(f"{path.name} has no sheet named '{sheet}'; its sheets are: {', '.join(names)}.")
    if sheet is None:
        sheet, grid, choice = _choose_sheet(path, workbook, table, lookup)
    else:
        grid = _grid(workbook, sheet)
        choice = _header(grid, table, lookup)
    if not grid:
        raise ContractError(f"Sheet '{sheet}' of {path.name} is empty.")
    width = max(len(row) for row in grid)
    header = [_cell_text(cell) for cell in grid[choice.index]] + [""] * (width - len(grid[choice.index]))
    start = choice.index + 1

    def bodies() -> Iterator[pd.DataFrame]:
        for first in range(start, len(grid), chunk_rows):
            text = [
                [_cell_text(cell) for cell in row] + [""] * (width - len(row))
                for row in grid[first : first + chunk_rows]
            ]
            yield pd.DataFrame(text, columns=range(width), dtype=object)

    kind = "legacy xls workbook" if legacy else "xlsx workbook"
    return Layout(
        header,
        start,
        bodies,
        len(grid) - start,
        f"{kind}, sheet '{sheet}'",
        sheet=sheet,
        skipped=rows_above(choice.index),
    )
