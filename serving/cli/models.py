"""``concord train``, ``concord models promote|rollback|history`` and ``concord score``.

Training logs to MLflow and registers challengers; governance moves the champion alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from serving.cli.common import console, fail, model_names, timestamp

if TYPE_CHECKING:
    import datetime as dt

    from sqlalchemy import Engine

    from concord.settings import Settings
    from training.registry import Decision


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
    train_models(settings, engine, model_names(model), timestamp(as_of, "--as-of"), promote_first)
    engine.dispose()


def train_models(settings: Settings, engine: Engine, names: tuple[str, ...], cut: dt.datetime | None,
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


def promote_command(model: Annotated[str, typer.Option(help="reachability, settlement or all")] = "all") -> None:
    """Make the challenger champion if it beats the champion on the same holdout; else refuse."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    settings = get_settings()
    engine = make_engine(settings)
    refused = False
    for name in model_names(model):
        decision = registry.promote(settings, engine, name)
        _print_decision(name, decision)
        refused |= not decision.promoted
    if refused:
        raise typer.Exit(1)


def rollback_command(model: Annotated[str, typer.Option(help="reachability or settlement")]) -> None:
    """Give the champion alias back to the previous champion."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    settings = get_settings()
    decision = registry.rollback(settings, make_engine(settings), model_names(model)[0])
    _print_decision(model, decision)
    if not decision.promoted:
        raise typer.Exit(1)


def history_command(model: Annotated[str, typer.Option(help="reachability, settlement or all")] = "all") -> None:
    """Which version held which alias when (MLflow keeps only the current alias)."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    engine = make_engine(get_settings())
    for name in model_names(model):
        frame = registry.history(engine, name)
        console.print(f"{registry.registered_name(name)}:")
        if frame.empty:
            console.print("  no alias changes yet")
        for row in frame.itertuples(index=False):
            console.print(f"  {row.changed_at:%Y-%m-%d %H:%M:%S} UTC  {row.alias:<10} -> "
                          f"{row.version or '(removed)'}  (was {row.previous_version or '-'}): {row.reason}",
                          highlight=False, soft_wrap=True)


def score_command(
    as_of: Annotated[str, typer.Option(help="score the cases open at this time (naive = Asia/Shanghai)")],
    out: Annotated[Path, typer.Option(help="CSV file to write")],
) -> None:
    """Every case open at a time with p_reach and p_settle from the champions, and their versions."""
    from concord.db import make_engine
    from concord.outputs import write_csv
    from concord.settings import get_settings
    from training.scoring import score

    settings = get_settings()
    try:
        frame = score(settings, make_engine(settings), timestamp(as_of, "--as-of"))
    except LookupError as error:
        fail(str(error))
    write_csv(frame, out)  # owner only, formula-like text neutralised
    console.print(f"scored {len(frame):,} open cases into {out}", soft_wrap=True)
