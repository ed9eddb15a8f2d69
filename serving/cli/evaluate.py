"""``concord evaluate-policy``: off-policy estimates of candidate policies from the logged history.

Prints, per policy (the learned one, the prior-based one, the best constant action, the logging
policy), the settlement rate and the net value per case (CNY) by IPS, SNIPS and DR with 95 %
intervals and effective sample sizes; logs them to MLflow; optionally writes the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import console, fail, timestamp


def evaluate_policy_command(
    policy: Annotated[str, typer.Option(help="learned, prior, constant, logging or all")] = "all",
    as_of: Annotated[
        str | None,
        typer.Option(
            help="the moment decisions are judged from (default: the latest "
            "the history can judge); naive = Asia/Shanghai"
        ),
    ] = None,
    window_days: Annotated[int, typer.Option(help="a case's next logged action must come within these days")] = 30,
    out: Annotated[Path | None, typer.Option(help="CSV of the estimates")] = None,
    policy_dir: Annotated[
        Path | None, typer.Option("--policy-dir", help="policy folder (default: the shipped one)")
    ] = None,
) -> None:
    """Estimate, from logged history alone, what candidate policies would have achieved."""
    import pandas as pd

    from concord.outputs import write_csv
    from policies.evaluation import POLICIES, EvaluationRefused, evaluate_policies, log_evaluation
    from serving.cli.policy import _context

    names = POLICIES if policy == "all" else (policy,)
    if any(name not in POLICIES for name in names):
        fail(f"--policy must be one of {', '.join(POLICIES)} or all, not '{policy}'.")
    if window_days < 1:
        fail("--window-days must be at least 1.")
    settings, engine, policy_engine, scorer = _context(policy_dir)
    learned = policy_engine.action_value if policy_engine.action_value.name == "action_effects" else None
    try:
        evaluation = evaluate_policies(
            settings,
            engine,
            policy_engine.policy,
            scorer,
            learned,
            timestamp(as_of, "--as-of"),
            names,
            pd.Timedelta(days=window_days),
        )
    except EvaluationRefused as error:
        fail(f"{error}.")
    run = log_evaluation(
        settings,
        evaluation,
        {"policy_version": policy_engine.policy.version, "action_value": policy_engine.value_version},
    )
    console.print(
        f"{len(evaluation.cases):,} decisions: the cases open at {evaluation.as_of:%Y-%m-%d %H:%M} UTC with "
        f"a logged action in the next {window_days} days; outcomes over the 90 days after (MLflow run "
        f"{run})",
        soft_wrap=True,
        highlight=False,
    )
    for note in evaluation.notes:
        console.print(f"  {note}", soft_wrap=True, highlight=False)
    table = evaluation.table
    for (name, measure), group in table.groupby(["policy", "measure"], sort=False):
        parts = [
            f"{row.estimator.upper()} {row.value:,.4f} [{row.low:,.4f}, {row.high:,.4f}]" for row in group.itertuples()
        ]
        console.print(
            f"{name:<28} {measure:<16} {'; '.join(parts)}; effective sample size {group['ess'].iloc[0]:,.0f}",
            soft_wrap=True,
            highlight=False,
        )
    if out is not None:
        write_csv(table, out)
        console.print(f"-> {out}", highlight=False)
