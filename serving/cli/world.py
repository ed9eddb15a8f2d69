"""``concord simulate`` and ``concord demo``: synthetic worlds for trying Concord end to end.

The only commands that import the simulator; the product's decision path never does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import MODEL_NAMES, console, date, fail
from serving.cli.imports import import_one
from serving.cli.models import train_models

DEMO_END = dt.date(2026, 6, 30)  # the demo world's last day
IMPORT_ORDER = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")


def simulate_command(
    cases: Annotated[int, typer.Option(help="number of cases in the world", min=1)] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same files")] = 1,
    out: Annotated[Path, typer.Option(help="folder for the six contract tables and the ground truth")] = Path("world"),
    format: Annotated[str, typer.Option(help="csv, xlsx or parquet")] = "csv",
    report: Annotated[bool, typer.Option("--report", help="print the calibration report against DOMAIN.md")] = False,
    snapshot: Annotated[
        str | None,
        typer.Option(help="date whose local midnight the snapshot truth looks from [default: end - 90 days]"),
    ] = None,
    effects: Annotated[str, typer.Option(help="effect profile of simulator/effect_profiles.yaml")] = "default",
    propensity: Annotated[
        bool, typer.Option("--propensity/--no-propensity", help="write the events' propensity, or leave it empty")
    ] = True,
) -> None:
    """Write a synthetic world: the six contract tables plus a ground truth only evaluation reads."""
    from simulator.calibration import calibration_report
    from simulator.profiles import profile_names
    from simulator.world import simulate_world
    from simulator.writers import write_world

    if format not in ("csv", "xlsx", "parquet"):
        fail(f"--format must be csv, xlsx or parquet, not '{format}'.")
    if effects not in profile_names():
        fail(f"--effects must be one of {', '.join(profile_names())}, not '{effects}'.")
    try:
        world = simulate_world(
            cases, seed, snapshot=date(snapshot, "--snapshot"), effects=effects, record_propensity=propensity
        )
        paths = write_world(world, out, format)  # type: ignore[arg-type]
    except ValueError as error:
        fail(f"{error}.")
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
        table.add_row(
            str(row.metric),
            str(row.creditor_type),
            f"{row.measured:.3f}",
            f"{row.target:.3f}",
            f"{row.tolerance:.3f}",
            "yes" if row.ok else "NO",
        )
    console.print(table)


def demo_command(
    cases: Annotated[int, typer.Option(help="cases in the demo world", min=100)] = 3000,
    seed: Annotated[int, typer.Option(help="random seed of the demo world")] = 1,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="end by serving it on --host:--port")] = True,
    host: Annotated[str, typer.Option(help="address the service listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port the service listens on", min=1, max=65535)] = 3000,
) -> None:
    """Build a demo world under CONCORD_HOME, import it, build its features, train, and serve it
    (what `make run` does): the service on 127.0.0.1:3000 with demo keys printed."""
    from concord.settings import get_settings
    from simulator.world import simulate_world
    from simulator.writers import write_world

    settings = get_settings()
    folder = settings.ensure_home() / "demo" / f"world-{cases}-{seed}"
    if not all((folder / f"{name}.csv").exists() for name in IMPORT_ORDER):
        console.print(f"simulating a demo world of {cases:,} cases (seed {seed}) into {folder}", soft_wrap=True)
        write_world(simulate_world(cases, seed, end=DEMO_END), folder, "csv")
    for name in IMPORT_ORDER:
        import_one(
            name,
            folder / f"{name}.csv",
            None,
            settings.home / "imports" / f"demo-{name}.json",
            quiet=True,
            received_at=None,
        )
    console.print(f"demo ledger: {settings.database_url}", soft_wrap=True, highlight=False)

    from concord.db import make_engine
    from features.offline.build import build_offline_tables
    from features.store.config import apply
    from features.store.materialisation import materialize

    with console.status("building features"):
        build_offline_tables(settings)
        apply(settings)
        materialize(settings)
    console.print(f"features built, applied and materialised under {settings.home / 'features'}", soft_wrap=True)
    engine = make_engine(settings)
    # Train with what was known when the demo world ends.
    end = dt.datetime(DEMO_END.year, DEMO_END.month, DEMO_END.day, tzinfo=dt.UTC)
    train_models(settings, engine, MODEL_NAMES, end, promote_first=True)
    creditor = _first_creditor(engine)
    engine.dispose()
    if serve:
        _serve_demo(creditor, host, port)


def _first_creditor(engine: object) -> str:
    from sqlalchemy import text

    with engine.connect() as connection:  # type: ignore[attr-defined]
        return str(connection.execute(text("SELECT name FROM creditors ORDER BY id LIMIT 1")).scalar_one())


def _serve_demo(creditor: str, host: str, port: int) -> None:
    """Make demo keys, print how to call the service, and serve (this process becomes the service)."""
    from concord.audit import audit_engine
    from concord.settings import get_settings
    from serving.auth import ADMIN, PLATFORM, create_key
    from serving.cli.service import prepare_service, serve_command

    prepare_service()
    store = audit_engine(get_settings())
    try:
        admin, platform = create_key(store, ADMIN), create_key(store, PLATFORM, creditor=creditor)
    finally:
        store.dispose()
    console.print(
        f"demo keys (shown once): admin {admin}\n  platform of {creditor}: {platform}", highlight=False, soft_wrap=True
    )
    console.print(
        f"try: curl -s -H 'Authorization: Bearer {platform}' -d '{{\"case_id\": \"CASE_ID\"}}' "
        f"http://{host}:{port}/next_best_action   (README: every endpoint)",
        highlight=False,
        soft_wrap=True,
    )
    serve_command(host=host, port=port)
