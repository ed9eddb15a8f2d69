"""The ``concord`` command line: one subcommand per job."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(
    help="Concord: who should work each debt case, and what to do next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The case ledger's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
errors = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the ledger schema to the latest version."""
    from concord.db import make_engine
    from concord.settings import get_settings

    engine = make_engine(get_settings())
    console.print(f"ledger ready at {engine.url.render_as_string(hide_password=True)}")


@app.command("import")
def import_command(
    table: Annotated[str, typer.Argument(help="cases, contact_checks, events, capacity, litigation or mediators")],
    file: Annotated[Path, typer.Argument(help="CSV, xlsx or parquet file in the contract shape")],
    sheet: Annotated[str | None, typer.Option(help="sheet of an xlsx workbook (default: the first)")] = None,
    report: Annotated[Path | None, typer.Option(help="where to write the JSON report (default: under CONCORD_HOME/imports)")] = None,
) -> None:
    """Import a contract file into the case ledger; print a summary, write a report.

    Rejected rows go to ``<report>.rejected.csv`` for a clerk to fix and send again.
    Exit code 2 when the file cannot be read as a whole (nothing is stored).
    """
    from concord.db import make_engine
    from concord.settings import get_settings
    from features.importer import import_file, write_outputs
    from features.reader import ContractError

    settings = get_settings()
    engine = make_engine(settings)
    size_hint = file.stat().st_size if file.exists() else 0
    show = size_hint > settings.progress_threshold * 100  # roughly 100 bytes a row
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, disable=not show, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        rejected: list = []
        try:
            result = import_file(table, file, settings, engine, sheet=sheet, progress=progress, rejected_rows=rejected)
        except ContractError as error:
            _fail(f"{error} Nothing was imported.")
            return
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    report_path = report or settings.home / "imports" / f"{stamp}-{result.batch_id}-{table}.json"
    rejected_csv = write_outputs(result, rejected, report_path)

    console.print(
        f"import {table} from {file.name} (batch {result.batch_id}): "
        f"rows read {result.rows_read:,}, imported {result.imported:,} "
        f"(new {result.inserted:,}, changed {result.updated:,}), unchanged {result.unchanged:,}, "
        f"rejected {result.rejected:,}, flagged {result.flagged:,}",
        highlight=False,
        soft_wrap=True,
    )
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


def main() -> None:
    """Entry point for ``python -m serving.cli``."""
    app()


if __name__ == "__main__":
    main()
