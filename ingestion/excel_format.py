"""Excel workbooks (xlsx, xlsm and old-style xls): one sheet, its header and rows as text.

Read by calamine, imported only when a workbook is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from ingestion.cell_text import _cell_text
from ingestion.contracts import ContractError


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
