"""``concord import TABLE FILE``: one contract file into the ledger, with its summary and report.

Rejected rows go to ``<report>.rejected.csv`` for a clerk to fix and send again.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from serving.cli.common import console, errors, fail, timestamp

if TYPE_CHECKING:
    from rich.progress import TaskID
    from sqlalchemy import Engine

    from ingestion.lateness import Lateness


def import_one(
    table: str,
    file: Path,
    sheet: str | None,
    report: Path | None,
    *,
    quiet: bool = False,
    received_at: dt.datetime | str | None = "now",
) -> object:
    """Run one import with a progress bar; write its report; print its summary."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from ingestion.contracts import ContractError
    from ingestion.importer import import_file
    from ingestion.report import write_outputs
    from ingestion.synonyms import SynonymError

    settings = get_settings()
    engine = make_engine(settings)
    size_hint = file.stat().st_size if file.exists() else 0
    show = size_hint > settings.progress_threshold * 100  # roughly 100 bytes a row
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, disable=not show, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage.startswith("waiting"):
                errors.print(f"{file.name}: {stage} to finish", highlight=False, soft_wrap=True)
                return
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} {file.name}", total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        rejected: list = []
        try:
            result = import_file(
                table,
                file,
                settings,
                engine,
                sheet=sheet,
                progress=progress,
                rejected_rows=rejected,
                received_at=received_at,
            )
            late = _history_received_late(engine, table, result.batch_id) if received_at is not None else None
        except ContractError as error:
            fail(f"{error} Nothing was imported.")
        except SynonymError as error:
            fail(f"{error} Nothing was imported.")
        finally:
            engine.dispose()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    report_path = report or settings.home / "imports" / f"{stamp}-{result.batch_id}-{table}.json"
    rejected_csv = write_outputs(result, rejected, report_path)

    console.print(
        f"import {table} from {file.name} (batch {result.batch_id}): "
        f"rows read {result.rows_read:,}, imported {result.imported:,} "
        f"(new {result.inserted:,}, changed {result.updated:,}), unchanged {result.unchanged:,}"
        + (f" (of which {result.redated:,} now count from when they happened)" if result.redated else "")
        + f", rejected {result.rejected:,}, flagged {result.flagged:,}",
        highlight=False,
        soft_wrap=True,
    )
    if late is not None:
        errors.print(f"[bold yellow]warning:[/] {late.advice()}.", highlight=False, soft_wrap=True)
    if quiet:
        return result
    console.print(result.layout_sentence(), highlight=False, soft_wrap=True)
    for flag, count in result.flags.items():
        console.print(f"flag {flag}: {count:,} rows")
    if result.ignored_columns:
        console.print(f"ignored columns: {', '.join(result.ignored_columns)}")
    for rejection in result.rejections[:5]:
        console.print(f"row {rejection.row}, {rejection.column}: {rejection.reason}", highlight=False)
    if result.rejected > 5:
        console.print(f"... and {result.rejected - 5:,} more rejected rows")
    console.print(f"report: {report_path}", soft_wrap=True)
    if rejected_csv:
        console.print(f"rejected rows to fix and re-send: {rejected_csv}", soft_wrap=True)
    return result


def _history_received_late(engine: Engine, table: str, batch_id: int | None) -> Lateness | None:
    """The import's lateness when most of its rows happened well before they were received."""
    from ingestion.lateness import lateness

    found = lateness(engine, table, batch_id) if batch_id is not None else None
    return found if found is not None and found.mostly_late else None


def import_command(
    table: Annotated[str, typer.Argument(help="cases, contact_checks, events, capacity, litigation or mediators")],
    file: Annotated[Path, typer.Argument(help="CSV, xlsx or parquet file in the contract shape")],
    sheet: Annotated[str | None, typer.Option(help="sheet of an xlsx workbook (default: the first)")] = None,
    report: Annotated[
        Path | None, typer.Option(help="where to write the JSON report (default: under CONCORD_HOME/imports)")
    ] = None,
    historical: Annotated[
        bool, typer.Option("--historical", help="a backfill of history: rows count as known when they happened")
    ] = False,
    received_at: Annotated[
        str | None,
        typer.Option(help="when these rows reached us, when replaying a feed (default: now; naive = Asia/Shanghai)"),
    ] = None,
) -> None:
    """Import a contract file into the case ledger; print a summary, write a report.

    Rejected rows go to ``<report>.rejected.csv`` for a clerk to fix and send again.
    Exit code 2 when the file cannot be read as a whole (nothing is stored).
    """
    when: dt.datetime | str | None = "now"
    if historical and received_at:
        fail("--historical and --received-at exclude each other.")
    if historical:
        when = None
    elif received_at:
        when = timestamp(received_at, "--received-at")
    import_one(table, file, sheet, report, received_at=when)
