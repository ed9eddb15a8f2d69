"""``concord train``, ``concord models promote|rollback|history`` and ``concord score``.

Training logs to MLflow and registers challengers; governance moves the champion alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from serving.cli.common import EFFECTS_MODEL, console, errors, fail, model_names, timestamp

if TYPE_CHECKING:
    import datetime as dt

    from sqlalchemy import Engine

    from concord.settings import Settings
    from training.registry import Decision
    from training.result import TrainingResult


def train_command(
    model: Annotated[str, typer.Option(help="reachability, settlement, all (those two) or action_effects")] = "all",
    as_of: Annotated[str | None, typer.Option(help="data cut-off (default: now); naive = Asia/Shanghai")] = None,
    promote_first: Annotated[bool, typer.Option(help="make the new model champion when there is none yet")] = True,
) -> None:
    """Train models on point-in-time features, log to MLflow, register as challenger."""
    from concord.db import make_engine
    from concord.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings)
    names = model_names(model)
    if names == (EFFECTS_MODEL,):
        train_effects(settings, engine, timestamp(as_of, "--as-of"), promote_first)
    else:
        train_models(settings, engine, names, timestamp(as_of, "--as-of"), promote_first)
    engine.dispose()


def train_effects(settings: Settings, engine: Engine, cut: dt.datetime | None, promote_first: bool) -> None:
    """Train the action-effect model, register it as challenger (exit 1, nothing registered, when refused)."""
    import datetime as dt

    from training import registry
    from training.checks import TrainingRefused
    from training.effects import prepare_effects
    from training.effects_tracking import log_effects, promote_effects

    as_of = cut or dt.datetime.now(dt.UTC)
    with console.status("action_effects: starting") as status:
        try:
            result = prepare_effects(settings, as_of, step=lambda text: status.update(text))
        except TrainingRefused as refusal:
            fail(f"{refusal}; nothing was registered.", code=1)
        status.update("action_effects: logging to MLflow")
        version = log_effects(settings, engine, result, {"as_of": as_of.isoformat()})
    value = result.policy_value
    console.print(
        f"action_effects: version {version} (challenger), method {result.chosen} (out of time: "
        + ", ".join(f"{row.method} SNIPS {row.snips:.4f}" for row in result.candidates.itertuples())
        + f"), refitted on {result.rows:,} decisions up to {result.time_range[1]:%Y-%m-%d}; its policy on the "
        f"holdout: settlement rate {value.dr.value:.4f} [{value.dr.low:.4f}, {value.dr.high:.4f}] (DR), the logging "
        f"policy's {result.logging_value:.4f}",
        soft_wrap=True,
        highlight=False,
    )
    fallback = [f"{name} ({why})" for name, why in result.model.fallback_.items() if why]
    console.print(
        f"estimated: {', '.join(result.model.supported_)}; left to the prior: {'; '.join(fallback) or 'none'}",
        soft_wrap=True,
        highlight=False,
    )
    client = registry.configure(settings)
    if promote_first and registry.version_by_alias(client, EFFECTS_MODEL, registry.CHAMPION) is None:
        console.print(f"action_effects: {promote_effects(settings, engine).reason}", soft_wrap=True)


def train_models(
    settings: Settings, engine: Engine, names: tuple[str, ...], cut: dt.datetime | None, promote_first: bool
) -> None:
    """Train every model named; register them only if none is refused (else exit 1)."""
    import datetime as dt

    from training import registry
    from training.checks import TrainingRefused
    from training.pipeline import prepare
    from training.tracking import log_and_register

    as_of = cut or dt.datetime.now(dt.UTC)
    results, refusals = [], []
    for name in names:
        with console.status(f"{name}: starting") as status:
            try:
                results.append(prepare(settings, engine, name, as_of, step=lambda text: status.update(text)))
            except TrainingRefused as refusal:
                refusals.append(f"{name}: {refusal}.")
    if refusals:
        for sentence in refusals:
            errors.print(f"[bold red]error:[/] {sentence}", highlight=False, soft_wrap=True)
        errors.print("nothing was registered.", highlight=False)
        raise typer.Exit(1)
    for result in results:
        name = result.spec.name
        with console.status(f"{name}: logging to MLflow") as status:
            version = log_and_register(
                settings, engine, result, {"as_of": as_of.isoformat()}, step=lambda text: status.update(text)
            )
        _print_training(result, version)
        client = registry.configure(settings)
        if promote_first and registry.version_by_alias(client, name, registry.CHAMPION) is None:
            decision = registry.promote(settings, engine, name)
            console.print(f"{name}: {decision.reason}", soft_wrap=True)


def _print_training(result: TrainingResult, version: str) -> None:
    auc, spread = result.auc("model")
    overall = result.metrics[(result.metrics["group"] == "all") & (result.metrics["estimator"] == "model")].iloc[0]
    kind = "gradient-boosted model" if result.chosen == "lightgbm" else "logistic baseline (it did better)"
    console.print(
        f"{result.spec.name}: version {version} (challenger), the {kind} refitted on {result.refit_rows:,} decisions "
        f"up to {result.refit_range[1]:%Y-%m-%d}; out of time over {len(result.folds)} origins ROC-AUC {auc:.4f} "
        f"+/- {spread:.4f} (baseline {result.auc('baseline')[0]:.4f}), Brier {overall['brier']:.4f}, "
        f"ECE {overall['ece']:.4f}, top-decile lift {overall['top_decile_lift']:.2f}",
        soft_wrap=True,
        highlight=False,
    )


def _print_decision(model: str, decision: Decision) -> None:
    figures = decision.figures
    for side in ("champion", "challenger"):
        if side in figures:
            f = figures[side]
            if "dr" in f:
                console.print(
                    f"  {side}: policy settlement rate {f['dr']:.4f} (DR, 95 % interval {f['dr_low']:.4f} "
                    f"to {f['dr_high']:.4f}), effective sample size {f['ess']:,.0f}",
                    highlight=False,
                )
                continue
            console.print(
                f"  {side}: ROC-AUC {f['roc_auc']:.4f}, Brier {f['brier']:.4f}, ECE {f['ece']:.4f}, rows {f['rows']:,}",
                highlight=False,
            )
    console.print(f"{model}: {decision.reason}", soft_wrap=True, highlight=False)


def promote_command(
    model: Annotated[str, typer.Option(help="reachability, settlement, all or action_effects")] = "all",
) -> None:
    """Make the challenger champion if it beats the champion on the same holdout; else refuse."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from training import registry

    settings = get_settings()
    engine = make_engine(settings)
    refused = False
    for name in model_names(model):
        if name == EFFECTS_MODEL:
            from training.effects_tracking import promote_effects

            decision = promote_effects(settings, engine)
        else:
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
            console.print(
                f"  {row.changed_at:%Y-%m-%d %H:%M:%S} UTC  {row.alias:<10} -> "
                f"{row.version or '(removed)'}  (was {row.previous_version or '-'}): {row.reason}",
                highlight=False,
                soft_wrap=True,
            )


def score_command(
    as_of: Annotated[str, typer.Option(help="score the cases open at this time (naive = Asia/Shanghai)")],
    out: Annotated[Path, typer.Option(help="CSV file to write")],
) -> None:
    """Every case open at a time with p_reach and p_settle from the champions, and their versions;
    beside it, `<out>.drift.csv`: each feature now against the training set (share present, PSI)."""
    from concord.db import make_engine
    from concord.outputs import write_csv
    from concord.settings import get_settings
    from training.scoring import log_drift, score_and_compare
    from training.skew import presence_warnings

    settings = get_settings()
    when = timestamp(as_of, "--as-of")
    try:
        frame, drift = score_and_compare(settings, make_engine(settings), when)
    except LookupError as error:
        fail(str(error))
    write_csv(frame, out)  # owner only, formula-like text neutralised
    report = write_csv(drift, out.with_name(f"{out.stem}.drift.csv"))
    log_drift(settings, drift, when, report)
    console.print(
        f"scored {len(frame):,} open cases into {out}; features against training: {report}",
        soft_wrap=True,
        highlight=False,
    )
    for sentence in presence_warnings(drift):
        errors.print(f"[bold yellow]warning:[/] {sentence}.", highlight=False, soft_wrap=True)
