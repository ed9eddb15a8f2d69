"""What an import did: the counts (:class:`ImportReport`), each rejected row (:class:`Rejection`),
and the files written for people (:func:`write_outputs`: the JSON report, the rejected rows as CSV).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from concord.outputs import write_csv, write_text
from ingestion.header import Skipped


@dataclass
class Rejection:
    """One rejected row: its spreadsheet row number, the column at fault and why."""

    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    """What an import did; the counts add up to ``rows_read``."""

    table: str
    source: str
    sheet: str | None
    batch_id: int | None
    rows_read: int = 0
    imported: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    redated: int = 0  # of the unchanged rows, those now known from an earlier time (a --historical re-import)
    rejected: int = 0
    flagged: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str | None = None
    detected: str = ""  # what the file was read as: format, encoding, delimiter, sheet
    header_row: int = 1
    skipped_rows: list[Skipped] = field(default_factory=list)  # not data: above the header, a footer
    rejections: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The report as written to ``--report``."""
        return asdict(self)

    def layout_sentence(self) -> str:
        """``Read as UTF-16LE with BOM, tab-separated; header on row 3; skipped rows 1-2 (above the header).``"""
        text = f"read as {self.detected}; header on row {self.header_row}"
        if self.skipped_rows:
            spans = ", ".join(
                f"{s.first}" + (f"-{s.last}" if s.last != s.first else "") + f" ({s.why})" for s in self.skipped_rows
            )
            text += f"; skipped rows {spans}"
        return text


def write_outputs(report: ImportReport, rejected_rows: list[pd.DataFrame], report_path: Path) -> Path | None:
    """Write the JSON report and, if any row was rejected, the rejected rows as CSV; both mode 0600.

    The CSV keeps the file's own headers and values, plus ``reject_row``, ``reject_column``
    and ``reject_reason``, so a clerk can fix it and send it again (extra columns are ignored
    on import). A cell a spreadsheet would run as a formula gets a leading apostrophe
    (:func:`concord.outputs.write_csv`), which the importer takes off again. Returns the CSV's
    path, or None.
    """
    write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2), report_path)
    if not rejected_rows:
        return None
    csv_path = report_path.with_name(report_path.stem + ".rejected.csv")
    frame = pd.concat(rejected_rows, ignore_index=True).sort_values("reject_row", kind="stable")
    write_csv(frame, csv_path)
    return csv_path
