"""The ``concord`` command line: one subcommand per job."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, overload

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# One console pair and one way to fail for every subcommand, shared with `concord features`.
from serving.cli_features import _fail, console, errors, features_app, profile_command

if TYPE_CHECKING:
    from rich.progress import TaskID
    from sqlalchemy import Engine

    from concord.settings import Settings
    from training.registry import Decision

app = typer.Typer(
    help="Concord: who should work each debt case, and what to do next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The case ledger's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
models_app = typer.Typer(help="Champion/challenger governance of the registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(features_app, name="features")
app.command("profile")(profile_command)


@app.callback()
def _check_settings() -> None:
    """Concord: who should work each debt case, and what to do next."""
    from concord.settings import get_settings

    try:
        get_settings()
    except ValueError as error:
        _fail(f"{error}.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the ledger schema to the latest version."""
    from concord.db import make_engine
    from concord.settings import get_settings

    engine = make_engine(get_settings())
    console.print(f"ledger ready at {engine.url.render_as_string(hide_password=True)}")


def _import_one(table: str, file: Path, sheet: str | None, report: Path | None, *, quiet: bool = False,
                received_at: dt.datetime | str | None = "now") -> object:
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
        tasks: dict[str, TaskID] = {}

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
    report: Annotated[Path | None, typer.Option(
        help="where to write the JSON report (default: under CONCORD_HOME/imports)")] = None,
    historical: Annotated[bool, typer.Option(
        "--historical", help="a backfill of history: rows count as known when they happened")] = False,
    received_at: Annotated[str | None, typer.Option(
        help="when these rows reached us, when replaying a feed (default: now; naive = Asia/Shanghai)")] = None,
) -> None:
    """Import a contract file into the case ledger; print a summary, write a report.

    Rejected rows go to ``<report>.rejected.csv`` for a clerk to fix and send again.
    Exit code 2 when the file cannot be read as a whole (nothing is stored).
    """
    when: dt.datetime | str | None = "now"
    if historical and received_at:
        _fail("--historical and --received-at exclude each other.")
    if historical:
        when = None
    elif received_at:
        when = _timestamp(received_at, "--received-at")
    _import_one(table, file, sheet, report, received_at=when)


DEMO_END = dt.date(2026, 6, 30)  # the demo world's last day
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
        write_world(simulate_world(cases, seed, end=DEMO_END), folder, "csv")
    for name in IMPORT_ORDER:
        _import_one(name, folder / f"{name}.csv", None, settings.home / "imports" / f"demo-{name}.json", quiet=True,
                    received_at=None)
    console.print(f"demo ledger: {settings.database_url}", soft_wrap=True, highlight=False)

    from concord.db import make_engine
    from features.build import build_offline_tables
    from features.store import apply, materialize

    with console.status("building features"):
        build_offline_tables(settings)
        apply(settings)
        materialize(settings)
    console.print(f"features built, applied and materialised under {settings.home / 'features'}", soft_wrap=True)
    engine = make_engine(settings)
    # Train with what was known when the demo world ends.
    end = dt.datetime(DEMO_END.year, DEMO_END.month, DEMO_END.day, tzinfo=dt.UTC)
    _train_models(settings, engine, MODEL_NAMES, end, promote_first=True)
    engine.dispose()


@overload
def _timestamp(text: str, option: str) -> dt.datetime: ...


@overload
def _timestamp(text: None, option: str) -> None: ...


def _timestamp(text: str | None, option: str) -> dt.datetime | None:
    """A CLI timestamp (naive = Asia/Shanghai) as aware UTC, or None."""
    if text is None:
        return None
    import pandas as pd

    from features.parsing import parse_timestamp

    parsed = parse_timestamp(pd.Series([text], dtype="string[pyarrow]"))
    if parsed.errors.notna().any():
        _fail(f"{option} {parsed.errors.iloc[0]}: '{text}'.")
    return parsed.values.iloc[0].to_pydatetime()


MODEL_NAMES = ("reachability", "settlement")


def _models(model: str) -> tuple[str, ...]:
    if model == "all":
        return MODEL_NAMES
    if model not in MODEL_NAMES:
        _fail(f"--model must be reachability, settlement or all, not '{model}'.")
    return (model,)


@app.command("train")
def train_command(
    model: Annotated[str, typer.Option(help="reachability, settlement or all")] = "all",
    as_of: Annotated[str | None, typer.Option(help="data cut-off (default: now); naive = Asia/Shanghai")] = None,
    promote_first: Annotated[bool, typer.Option(help="make the new model champion when there is none yet")] = True,
) -> None:
    """Train models on point-in-time features, log to MLflow, register as challenger."""
    from concord.db import make_engine
    from concord.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings)
    _train_models(settings, engine, _models(model), _timestamp(as_of, "--as-of"), promote_first)
    engine.dispose()


def _train_models(settings: Settings, engine: Engine, names: tuple[str, ...], cut: dt.datetime | None,
                  promote_first: bool) -> None:
    from training import registry
    from training.pipeline import train

    for name in names:
        with console.status(f"{name}: starting") as status:
            result, version = train(settings, engine, name, cut, step=lambda text: status.update(text))
        overall = result.metrics[result.metrics["group"] == "all"].set_index("estimator")
        console.print(
            f"{name}: version {version} (challenger); holdout ROC-AUC {overall.loc['model', 'roc_auc']:.4f} "
            f"(baseline {overall.loc['baseline', 'roc_auc']:.4f}), Brier {overall.loc['model', 'brier']:.4f}, "
            f"ECE {overall.loc['model', 'ece']:.4f}, top-decile lift {overall.loc['model', 'top_decile_lift']:.2f}",
            soft_wrap=True, highlight=False)
        client = registry.configure(settings)
        if promote_first and registry.version_by_alias(client, name, registry.CHAMPION) is None:
            decision = registry.promote(settings, engine, name)
            console.print(f"{name}: {decision.reason}", soft_wrap=True)


def _print_decision(model: str, decision: Decision) -> None:
    figures = decision.figures
    for side in ("champion", "challenger"):
        if side in figures:
            f = figures[side]
            console.print(f"  {side}: ROC-AUC {f['roc_auc']:.4f}, Brier {f['brier']:.4f}, ECE {f['ece']:.4f}, "
                          f"rows {f['rows']:,}", highlight=False)
    console.print(f"{model}: {decision.reason}", soft_wrap=True, highlight=False)


@models_app.command("promote")
def promote_command(model: Annotated[str, typer.Option(help="reachability, settlement or all")] = "all") -> None:
    """Make the challenger champion if it beats the champion on the same holdout; else refuse."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    settings = get_settings()
    engine = make_engine(settings)
    refused = False
    for name in _models(model):
        decision = registry.promote(settings, engine, name)
        _print_decision(name, decision)
        refused |= not decision.promoted
    if refused:
        raise typer.Exit(1)


@models_app.command("rollback")
def rollback_command(model: Annotated[str, typer.Option(help="reachability or settlement")]) -> None:
    """Give the champion alias back to the previous champion."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    settings = get_settings()
    decision = registry.rollback(settings, make_engine(settings), _models(model)[0])
    _print_decision(model, decision)
    if not decision.promoted:
        raise typer.Exit(1)


@models_app.command("history")
def history_command(model: Annotated[str, typer.Option(help="reachability, settlement or all")] = "all") -> None:
    """Which version held which alias when (MLflow keeps only the current alias)."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    engine = make_engine(get_settings())
    for name in _models(model):
        frame = registry.history(engine, name)
        console.print(f"{registry.registered_name(name)}:")
        if frame.empty:
            console.print("  no alias changes yet")
        for row in frame.itertuples(index=False):
            console.print(f"  {row.changed_at:%Y-%m-%d %H:%M:%S} UTC  {row.alias:<10} -> "
                          f"{row.version or '(removed)'}  (was {row.previous_version or '-'}): {row.reason}",
                          highlight=False, soft_wrap=True)


@app.command("score")
def score_command(
    as_of: Annotated[str, typer.Option(help="score the cases open at this time (naive = Asia/Shanghai)")],
    out: Annotated[Path, typer.Option(help="CSV file to write")],
) -> None:
    """Every case open at a time with p_reach and p_settle from the champions, and their versions."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training.scoring import score

    settings = get_settings()
    try:
        frame = score(settings, make_engine(settings), _timestamp(as_of, "--as-of"))
    except LookupError as error:
        _fail(str(error))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, encoding="utf-8-sig")
    console.print(f"scored {len(frame):,} open cases into {out}", soft_wrap=True)


def main() -> None:
    """Entry point for ``python -m serving.cli``."""
    app()


if __name__ == "__main__":
    main()
