"""What an import did: the counts (:class:`ImportReport`), each rejected row (:class:`Rejection`),
and the files written for people (:func:`write_outputs`: the JSON report, the rejected rows as CSV).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


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
    rejections: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The report as written to ``--report``."""
        return asdict(self)


def write_outputs(report: ImportReport, rejected_rows: list[pd.DataFrame], report_path: Path) -> Path | None:
    """Write the JSON report and, if any row was rejected, the rejected rows as CSV.

    The CSV keeps the file's own headers and values, plus ``reject_row``, ``reject_column``
    and ``reject_reason``, so a clerk can fix it and send it again (extra columns are ignored
    on import). Returns the CSV's path, or None.
    """
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    if not rejected_rows:
        return None
    csv_path = report_path.with_name(report_path.stem + ".rejected.csv")
    frame = pd.concat(rejected_rows, ignore_index=True).sort_values("reject_row", kind="stable")
    frame.to_csv(csv_path, index=False, encoding="utf-8-sig")
    return csv_path
