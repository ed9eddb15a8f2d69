"""``concord features ...`` (build, apply, materialize) and ``concord profile CASE_ID``.

``features_app`` is registered in ``serving/cli.py`` as ``concord features``; ``profile_command``
as ``concord profile``. Timestamps on the command line accept ISO forms (``2026-06-30``,
``2026-06-30T12:00``); naive ones are Asia/Shanghai, like every contract timestamp.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich.console import Console

features_app = typer.Typer(help="The Feast feature store: offline tables, registry, online store.",
                           no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _timestamp(value: str | None, option: str) -> dt.datetime | None:
    """Parse a command-line timestamp (naive = Asia/Shanghai) to aware UTC."""
    if value is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        _fail(f"{option} '{value}' is not a timestamp like 2026-06-30 or 2026-06-30T12:00.")
        raise  # unreachable: _fail exits
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return parsed.astimezone(dt.UTC)


@features_app.command("build")
def build_command(
    as_of: Annotated[str | None, typer.Option("--as-of", help="only what was known at this time (default now)")] = None,
) -> None:
    """Build the offline feature tables (parquet under CONCORD_HOME/features/offline) from the ledger."""
    from concord.settings import get_settings
    from features.build import build_offline_tables

    moment = _timestamp(as_of, "--as-of")
    started = time.perf_counter()
    paths = build_offline_tables(get_settings(), moment)
    import pyarrow.parquet as pq

    for name, path in paths.items():
        console.print(f"{name}: {pq.ParquetFile(path).metadata.num_rows:,} rows -> {path}", soft_wrap=True,
                      highlight=False)
    console.print(f"built in {time.perf_counter() - started:.1f} s", highlight=False)


@features_app.command("apply")
def apply_command() -> None:
    """Register entities, feature views and services in the Feast registry (idempotent)."""
    from concord.settings import get_settings
    from features.store import apply, write_feature_store_yaml

    settings = get_settings()
    names = apply(settings)
    console.print(f"applied: {', '.join(names)}", soft_wrap=True, highlight=False)
    console.print(f"feature_store.yaml for the feast CLI: {write_feature_store_yaml(settings)}", soft_wrap=True,
                  highlight=False)


@features_app.command("materialize")
def materialize_command(
    end: Annotated[str | None, typer.Option("--end", help="materialise up to this time (default now)")] = None,
) -> None:
    """Load the online store incrementally from the offline tables (up to their build time)."""
    from concord.settings import get_settings
    from features.store import materialize

    try:
        done = materialize(get_settings(), _timestamp(end, "--end"))
    except FileNotFoundError as error:
        _fail(str(error))
        return
    if not done:
        console.print("online store already up to date")
    for view, run in done.items():
        console.print(f"{view}: {run.entities:,} entities, {run.start:%Y-%m-%d %H:%M} -> {run.end:%Y-%m-%d %H:%M} UTC "
                      f"({run.seconds:.1f} s)", highlight=False)


def profile_command(
    case_id: Annotated[str, typer.Argument(help="the creditor's case number (案件编号)")],
    creditor: Annotated[str | None, typer.Option(
        help="creditor name, when several creditors use this case number")] = None,
) -> None:
    """Show the debtor profile of a case: reachability, capacity, litigation, last events (masked identifiers only)."""
    from concord.settings import get_settings
    from features.profile import ProfileError, debtor_profile, print_profile

    try:
        profile = debtor_profile(get_settings(), case_id, creditor)
    except ProfileError as error:
        _fail(str(error))
        return
    print_profile(profile, console)
