"""Files Concord writes for people to open: CSV and Excel made safe, readable by their owner only.

Spreadsheet programs run a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (CSV injection); such text cells get a leading apostrophe (the OWASP rule),
which Excel shows as text and which ``restore_text`` takes off again when a file comes back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def neutralise_text(value: object) -> object:
    """``value`` with a leading apostrophe when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore_text(value: str) -> str:
    """The text ``neutralise_text`` was given: one leading apostrophe before a formula start is dropped."""
    if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are neutralised; numbers, dates and booleans stay as they are."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            out[column] = series.map(neutralise_text, na_action="ignore")
    return out


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)
    return path


def _private(path: Path) -> Path:
    if not path.parent.exists():
        private_dir(path.parent)
    path.touch(mode=PRIVATE_FILE, exist_ok=True)
    os.chmod(path, PRIVATE_FILE)
    return path


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` as UTF-8 to ``path``, mode 0600 in a folder Concord makes 0700 (a JSON report)."""
    _private(path).write_text(text, encoding="utf-8")
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as UTF-8 CSV with a BOM (Excel opens it right), neutralised, mode 0600.

    Records end in CRLF, so that a carriage return inside a cell is quoted like a line break.
    """
    neutralise_frame(frame).to_csv(_private(path), index=False, encoding="utf-8-sig", lineterminator="\r\n")
    return path


def write_xlsx(sheets: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Write one sheet per entry of ``sheets`` (name -> frame) as an xlsx workbook, neutralised, mode 0600."""
    with pd.ExcelWriter(_private(path), engine="openpyxl") as writer:
        for name, frame in sheets.items():
            neutralise_frame(frame).to_excel(writer, sheet_name=name[:31], index=False)
    return path
