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


def _import_one(table: str, file: Path, sheet: str | None, report: Path | None, *, quiet: bool = False,
                received_at: object = "now") -> object:
    """Run one import with a progress bar; write its report; print its summary."""
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
                tasks[stage] = bar.add_task(f"{stage} {file.name}", total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        rejected: list = []
        try:
            result = import_file(table, file, settings, engine, sheet=sheet, progress=progress, rejected_rows=rejected,
                                 received_at=received_at)
        except ContractError as error:
            _fail(f"{error} Nothing was imported.")
        finally:
            engine.dispose()
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
    if quiet:
        return result
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


@app.command("import")
def import_command(
    table: Annotated[str, typer.Argument(help="cases, contact_checks, events, capacity, litigation or mediators")],
    file: Annotated[Path, typer.Argument(help="CSV, xlsx or parquet file in the contract shape")],
    sheet: Annotated[str | None, typer.Option(help="sheet of an xlsx workbook (default: the first)")] = None,
    report: Annotated[Path | None, typer.Option(help="where to write the JSON report (default: under CONCORD_HOME/imports)")] = None,
    historical: Annotated[bool, typer.Option("--historical", help="a backfill of history: rows count as known when they happened")] = False,
    received_at: Annotated[str | None, typer.Option(help="when these rows reached us, when replaying a feed (default: now; naive = Asia/Shanghai)")] = None,
) -> None:
    """Import a contract file into the case ledger; print a summary, write a report.

    Rejected rows go to ``<report>.rejected.csv`` for a clerk to fix and send again.
    Exit code 2 when the file cannot be read as a whole (nothing is stored).
    """
    when: object = "now"
    if historical and received_at:
        _fail("--historical and --received-at exclude each other.")
    if historical:
        when = None
    elif received_at:
        import pandas as pd

        from features.parsing import parse_timestamp

        parsed = parse_timestamp(pd.Series([received_at], dtype="string[pyarrow]"))
        if parsed.errors.notna().any():
            _fail(f"--received-at {parsed.errors.iloc[0]}: '{received_at}'.")
        when = parsed.values.iloc[0].to_pydatetime()
    _import_one(table, file, sheet, report, received_at=when)


IMPORT_ORDER = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")


@app.command("simulate")
def simulate_command(
    cases: Annotated[int, typer.Option(help="number of cases in the world", min=1)] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same files")] = 1,
    out: Annotated[Path, typer.Option(help="folder for the six contract tables and the ground truth")] = Path("world"),
    format: Annotated[str, typer.Option(help="csv, xlsx or parquet")] = "csv",
    report: Annotated[bool, typer.Option("--report", help="print the calibration report against DOMAIN.md")] = False,
) -> None:
    """Write a synthetic world: the six contract tables plus a ground truth only evaluation reads."""
    from features.simulate import calibration_report, simulate_world, write_world

    if format not in ("csv", "xlsx", "parquet"):
        _fail(f"--format must be csv, xlsx or parquet, not '{format}'.")
    world = simulate_world(cases, seed)
    try:
        paths = write_world(world, out, format)  # type: ignore[arg-type]
    except ValueError as error:
        _fail(str(error))
    for name, path in paths.items():
        console.print(f"{name}: {path}", soft_wrap=True, highlight=False)
    if report:
        _print_calibration(calibration_report(world))


def _print_calibration(frame: object) -> None:
    from rich.table import Table as RichTable

    table = RichTable(title="calibration against the published pilots (DOMAIN.md)")
    for column in ("metric", "creditor_type", "measured", "target", "tolerance", "ok"):
        table.add_column(column)
    for row in frame.itertuples(index=False):  # type: ignore[attr-defined]
        table.add_row(str(row.metric), str(row.creditor_type), f"{row.measured:.3f}", f"{row.target:.3f}",
                      f"{row.tolerance:.3f}", "yes" if row.ok else "NO")
    console.print(table)


@app.command("demo")
def demo_command(
    cases: Annotated[int, typer.Option(help="cases in the demo world", min=100)] = 3000,
    seed: Annotated[int, typer.Option(help="random seed of the demo world")] = 1,
) -> None:
    """Build a demo world under CONCORD_HOME and import it (what `make run` does)."""
    from concord.settings import get_settings
    from features.simulate import simulate_world, write_world

    settings = get_settings()
    folder = settings.ensure_home() / "demo" / f"world-{cases}-{seed}"
    if not all((folder / f"{name}.csv").exists() for name in IMPORT_ORDER):
        console.print(f"simulating a demo world of {cases:,} cases (seed {seed}) into {folder}", soft_wrap=True)
        write_world(simulate_world(cases, seed), folder, "csv")
    for name in IMPORT_ORDER:
        _import_one(name, folder / f"{name}.csv", None, settings.home / "imports" / f"demo-{name}.json", quiet=True,
                    received_at=None)
    console.print(f"demo ledger: {settings.database_url}", soft_wrap=True, highlight=False)


def main() -> None:
    """Entry point for ``python -m serving.cli``."""
    app()


if __name__ == "__main__":
    main()
