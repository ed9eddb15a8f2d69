"""Files for people to open: formula-like text is neutralised (opened back to prove it), the
neutralised text comes back as it was, and the files are readable by their owner only."""

from __future__ import annotations

import stat

import openpyxl
import pandas as pd

from concord.outputs import restore_text, write_csv, write_xlsx

DANGEROUS = ['=HYPERLINK("http://x","点击")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_csv_cells_that_would_run_as_formulas_are_text(tmp_path) -> None:
    frame = pd.DataFrame({"name": [*DANGEROUS, "王伟"], "amount": [1.5] * 6 + [-3.0]})
    path = write_csv(frame, tmp_path / "out" / "list.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in back["name"])
    assert [restore_text(cell) for cell in back["name"]] == [*DANGEROUS, "王伟"]
    assert back["amount"].iloc[-1] == "-3.0"  # numbers are not text: left alone
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_xlsx_cells_are_strings_not_formulas(tmp_path) -> None:
    path = write_xlsx({"诉讼": pd.DataFrame({"债务人": DANGEROUS})}, tmp_path / "court.xlsx")
    sheet = openpyxl.load_workbook(path)["诉讼"]
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells)
    assert all(cell.value.startswith("'") for cell in cells)
    # XML keeps no bare carriage return (it reads back as a line feed); every other cell comes back exactly
    assert [restore_text(cell.value) for cell in cells][:-1] == DANGEROUS[:-1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_restore_leaves_ordinary_apostrophes() -> None:
    assert restore_text("'abc") == "'abc"
    assert restore_text("'") == "'"
    assert restore_text("''=1") == "''=1"
