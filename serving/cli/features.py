"""``concord features build|apply|materialize`` and ``concord profile CASE_ID``.

The Feast feature store's offline tables, registry and online store; a debtor's masked profile.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from serving.cli.common import console, fail, timestamp


def build_command(
    as_of: Annotated[str | None, typer.Option("--as-of", help="only what was known at this time (default now)")] = None,
) -> None:
    """Build the offline feature tables (parquet under CONCORD_HOME/features/offline) from the ledger."""
    from concord.settings import get_settings
    from features.offline.build import build_offline_tables

    moment = timestamp(as_of, "--as-of")
    started = time.perf_counter()
    paths = build_offline_tables(get_settings(), moment)
    import pyarrow.parquet as pq

    for name, path in paths.items():
        console.print(
            f"{name}: {pq.ParquetFile(path).metadata.num_rows:,} rows -> {path}", soft_wrap=True, highlight=False
        )
    console.print(f"built in {time.perf_counter() - started:.1f} s", highlight=False)


def apply_command() -> None:
    """Register entities, feature views and services in the Feast registry (idempotent)."""
    from concord.settings import get_settings
    from features.store.config import apply, write_feature_store_yaml

    settings = get_settings()
    names = apply(settings)
    console.print(f"applied: {', '.join(names)}", soft_wrap=True, highlight=False)
    console.print(
        f"feature_store.yaml for the feast CLI: {write_feature_store_yaml(settings)}", soft_wrap=True, highlight=False
    )


def materialize_command(
    end: Annotated[str | None, typer.Option("--end", help="materialise up to this time (default now)")] = None,
) -> None:
    """Load the online store incrementally from the offline tables (up to their build time)."""
    from concord.settings import get_settings
    from features.store.materialisation import materialize

    try:
        done = materialize(get_settings(), timestamp(end, "--end"))
    except FileNotFoundError as error:
        fail(str(error))
    if not done:
        console.print("online store already up to date")
    for view, run in done.items():
        console.print(
            f"{view}: {run.entities:,} entities, {run.start:%Y-%m-%d %H:%M} -> {run.end:%Y-%m-%d %H:%M} UTC "
            f"({run.seconds:.1f} s)",
            highlight=False,
        )


def profile_command(
    case_id: Annotated[str, typer.Argument(help="the creditor's case number (案件编号)")],
    creditor: Annotated[
        str | None, typer.Option(help="creditor name, when several creditors use this case number")
    ] = None,
) -> None:
    """Show the debtor profile of a case: reachability, capacity, litigation, last events (masked identifiers only)."""
    from concord.settings import get_settings
    from features.profile import ProfileError, debtor_profile, print_profile

    try:
        profile = debtor_profile(get_settings(), case_id, creditor)
    except ProfileError as error:
        fail(str(error))
    print_profile(profile, console)
