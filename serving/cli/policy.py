"""``concord recommend``, ``concord assign``, ``concord litigation-list``, ``concord policy check`` and
``concord disputes resolve``: the policy engine on the command line.

Files for people (recommendations, assignments, court lists) are written through
``concord.outputs`` (formula-like text neutralised, mode 0600). A bad policy file, an unknown case
or court, an unknown workflow or a missing champion gets one sentence and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from serving.cli.common import console, fail, timestamp

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

PolicyOption = Annotated[Path | None, typer.Option("--policy", help="policy folder (default: the shipped one)")]
WorkflowOption = Annotated[str | None, typer.Option(help="put every case on this workflow (five_level, one_plus_x)")]
AsOfOption = Annotated[str | None, typer.Option(help="decide as of this time (default: now); naive = Asia/Shanghai")]


def _policy(directory: Path | None, workflow: str | None = None) -> Any:
    from policies.config import load_policy
    from policies.schema import PolicyError

    try:
        policy = load_policy(directory)
        return policy.with_workflow(workflow) if workflow else policy
    except PolicyError as error:
        fail(str(error))


def _as_of(text: str | None) -> dt.datetime:
    import datetime as dt

    return timestamp(text, "--as-of") if text else dt.datetime.now(dt.UTC)


def _context(policy_dir: Path | None, workflow: str | None = None) -> tuple[Any, Any, Any, Any]:
    """Settings, ledger engine, policy engine and champion scorer; exit 2 without champions. The
    engine values actions with the action-effect champion when there is one, else the priors."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from policies.engine import PolicyEngine
    from policies.learned_value import LearnedValue
    from policies.scores import ChampionScorer

    policy = _policy(policy_dir, workflow)
    settings = get_settings()
    try:
        scorer = ChampionScorer.champions(settings)
    except LookupError as error:
        fail(f"{error}.")
    try:
        value = LearnedValue.champion(settings, policy.effects)
    except LookupError:
        value = None  # no action-effect model yet: the documented priors
    return settings, make_engine(settings), PolicyEngine(policy, value), scorer


def _write(frames: dict[str, pd.DataFrame], out: Path) -> None:
    from concord.outputs import write_csv, write_xlsx

    if out.suffix.lower() == ".xlsx":
        write_xlsx(frames, out)
    else:
        write_csv(next(iter(frames.values())), out)


def recommend_command(
    case_id: Annotated[str | None, typer.Argument(help="the creditor's case id")] = None,
    all_cases: Annotated[bool, typer.Option("--all", help="every case open at --as-of")] = False,
    creditor: Annotated[str | None, typer.Option(help="the creditor, when several use CASE_ID")] = None,
    as_of: AsOfOption = None,
    out: Annotated[Path | None, typer.Option(help="with --all: the CSV (or .xlsx) to write")] = None,
    workflow: WorkflowOption = None,
    policy: PolicyOption = None,
) -> None:
    """The next best action for one case, or for every open case (--all --out FILE)."""
    from policies.cases import CaseNotFound, case_pk_of
    from policies.runs import recommend_all, recommend_case

    if all_cases == (case_id is not None):
        fail("give either a CASE_ID or --all.")
    if all_cases and out is None:
        fail("--all needs --out FILE (CSV, or .xlsx).")
    settings, engine, policy_engine, scorer = _context(policy, workflow)
    moment = _as_of(as_of)
    if case_id is not None:
        try:
            case_pk = case_pk_of(engine, case_id, creditor)
        except CaseNotFound as error:
            fail(f"{error}.")
        _print_one(recommend_case(settings, engine, moment, policy_engine, scorer, case_pk))
        return
    assert out is not None
    frame = recommend_all(settings, engine, moment, policy_engine, scorer)
    _write({"recommendations": frame}, out)
    console.print(
        f"{len(frame):,} open cases at {moment:%Y-%m-%d %H:%M} UTC -> {out} (policy {policy_engine.policy.version})",
        soft_wrap=True,
        highlight=False,
    )
    _print_counts(frame, "stage", "action", "recommended actions by stage")


def _print_counts(frame: pd.DataFrame, rows: str, columns: str, title: str) -> None:
    """One line per ``rows`` value: its count, then ``columns`` values by count (fits any width)."""
    console.print(f"{title}:", highlight=False)
    for name, group in frame.groupby(rows, sort=True):
        counts = group[columns].value_counts()
        listed = ", ".join(f"{value} {count:,}" for value, count in counts.items())
        console.print(f"  {name} ({len(group):,}): {listed}", highlight=False, soft_wrap=True)


def _print_one(answer: Any) -> None:
    from rich.table import Table

    console.print(
        f"case {answer.case_id} ({answer.creditor}): workflow {answer.workflow}, stage {answer.stage}", highlight=False
    )
    console.print(
        f"recommended: [bold]{answer.action}[/], expected value {answer.expected_value:,.2f} CNY"
        f"{' (needs review)' if answer.needs_review else ''}; recoverable claim "
        f"{answer.recoverable_claim:,.2f} CNY",
        highlight=False,
    )
    table = Table(title="eligible actions, best first")
    for column in ("action", "expected value (CNY)", "95 % interval (CNY)", "P(settle 90d)", "cost (CNY)", "source"):
        table.add_column(column)
    for ranked in answer.ranked:
        interval = "" if ranked.value_low is None else f"{ranked.value_low:,.2f} to {ranked.value_high:,.2f}"
        table.add_row(
            ranked.action,
            f"{ranked.expected_value:,.2f}",
            interval,
            f"{ranked.p_settle:.4f}",
            f"{ranked.cost_cny:,.2f}",
            ranked.source,
        )
    console.print(table)
    if answer.explored:
        console.print(
            f"explored: drawn at random (share {answer.epsilon:.0%}); the best by value was {answer.greedy_action}",
            highlight=False,
        )
    console.print(f"propensity (record it with the action): {answer.propensity:.4f}", highlight=False)
    why = answer.explanation
    if why is not None:
        console.print(
            f"why {why.chosen} and not {why.runner_up}: {why.value_difference:+,.2f} CNY, P(settle) "
            f"{why.p_settle_difference:+.4f}; {why.note}",
            highlight=False,
            soft_wrap=True,
        )
        for item in why.features:
            shown = "unknown" if item.value is None else f"{item.value:.4g}"
            console.print(
                f"  {item.feature} = {shown}: {item.log_odds:+.3f} log-odds for {why.chosen}", highlight=False
            )
    for blocked in answer.blocked:
        console.print(
            f"blocked {blocked.action}: {'; '.join(blocked.rules)} ({'; '.join(blocked.reasons)})",
            highlight=False,
            soft_wrap=True,
        )
    plan = answer.installment
    if plan.term_months:
        console.print(
            f"installment plan: {plan.term_months} months x {plan.monthly_cny:,.0f} CNY ({plan.status}, "
            f"covers {plan.covers:.0%}; capacity {plan.capacity_cny:,.0f} CNY a month)",
            highlight=False,
        )
    else:
        console.print(f"installment plan: none ({plan.status})", highlight=False)
    for flags, label in ((answer.flags, "flags"), (answer.risk_flags, "risk flags")):
        if flags:
            console.print(f"{label}: {', '.join(flags)}", highlight=False)
    for reason in answer.reasons:
        shown = "unknown" if reason.value is None else f"{reason.value:.4g}"
        console.print(
            f"reason ({reason.model}): {reason.feature} = {shown} -> {reason.log_odds:+.3f} log-odds", highlight=False
        )
    console.print(
        f"policy {answer.policy_version}; values {answer.action_value}; models "
        f"{', '.join(f'{k} v{v}' for k, v in answer.model_versions.items())}",
        highlight=False,
    )


def assign_command(
    out: Annotated[Path, typer.Option(help="CSV (or .xlsx) of the cases and their mediators")],
    as_of: AsOfOption = None,
    rebalance: Annotated[
        bool, typer.Option(help="reassign every open case, not only those without a mediator")
    ] = False,
    save: Annotated[bool, typer.Option(help="record the assignments in the ledger")] = False,
    policy: PolicyOption = None,
) -> None:
    """Assign open cases to mediators for the best expected recovery within capacity and fit."""
    from policies.runs import plan_assignment
    from policies.staffing import save_assignments

    settings, engine, policy_engine, scorer = _context(policy)
    moment = _as_of(as_of)
    plan = plan_assignment(settings, engine, moment, policy_engine, scorer, rebalance=rebalance)
    cases = plan.cases.drop(columns="case_pk")
    if out.suffix.lower() == ".xlsx":
        _write({"assignments": cases, "mediators": plan.mediators}, out)
    else:
        _write({"assignments": cases}, out)
        _write({"mediators": plan.mediators}, out.with_suffix(".mediators.csv"))
    assigned = plan.cases[plan.cases["mediator_id"] != ""]
    console.print(
        f"{len(assigned):,} of {len(plan.cases):,} cases assigned, expected recovery "
        f"{assigned['expected_recovery'].sum():,.2f} CNY -> {out}",
        highlight=False,
        soft_wrap=True,
    )
    for reason, count in plan.cases.loc[plan.cases["mediator_id"] == "", "reason"].value_counts().items():
        console.print(f"  {count:,} {reason}", highlight=False, soft_wrap=True)
    if save:
        run = save_assignments(engine, assigned, policy_engine.policy.version, moment)
        console.print(f"recorded as run {run}", highlight=False)


def litigation_list_command(
    court: Annotated[str, typer.Option(help="the court, as the case pool names it")],
    out: Annotated[Path, typer.Option(help="the .xlsx to write (a .csv of all routes is written beside it)")],
    as_of: AsOfOption = None,
    workflow: WorkflowOption = None,
    policy: PolicyOption = None,
) -> None:
    """A court's list: cases proposed for filing, payment order or pre-check write-off, with risk
    flags and the claim computed (Excel, Chinese headers, one sheet per route; and CSV)."""
    import pandas as pd

    from concord.outputs import write_csv, write_xlsx
    from policies.cases import CaseNotFound
    from policies.runs import court_list

    if out.suffix.lower() != ".xlsx":
        fail(f"--out must name an .xlsx file, not '{out.name}'.")
    settings, engine, policy_engine, scorer = _context(policy, workflow)
    moment = _as_of(as_of)
    try:
        sheets = court_list(settings, engine, moment, policy_engine, scorer, court)
    except CaseNotFound as error:
        fail(f"{error}.")
    write_xlsx(sheets, out)
    write_csv(pd.concat(sheets.values(), ignore_index=True), out.with_suffix(".csv"))
    counts = ", ".join(f"{name} {len(frame):,}" for name, frame in sheets.items())
    console.print(f"{court}: {counts} -> {out} and {out.with_suffix('.csv')}", highlight=False, soft_wrap=True)


def policy_check_command(policy: PolicyOption = None) -> None:
    """Load and check a policy folder; print its version, workflows and guardrails."""
    loaded = _policy(policy)
    console.print(f"policy {loaded.version} ({loaded.directory})", highlight=False, soft_wrap=True)
    for workflow in loaded.workflows.values():
        console.print(f"  workflow {workflow.name} ({workflow.zh}): {' -> '.join(workflow.order)}", highlight=False)
    console.print(f"  guardrails: {', '.join(loaded.guardrails.ids())}", highlight=False, soft_wrap=True)
    console.print(
        f"  actions: {len(loaded.catalogue.actions)}; default workflow {loaded.choice.default}", highlight=False
    )


def resolve_dispute_command(
    case_id: Annotated[str, typer.Argument(help="the creditor's case id")],
    by: Annotated[str, typer.Option(help="the supervisor who resolved the dispute")],
    creditor: Annotated[str | None, typer.Option(help="the creditor, when several use CASE_ID")] = None,
    note: Annotated[str, typer.Option(help="what was decided")] = "",
) -> None:
    """Record that a supervisor resolved the debtor's dispute (异议): contact may resume."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from policies.cases import CaseNotFound, case_pk_of
    from policies.staffing import resolve_dispute

    engine = make_engine(get_settings())
    try:
        case_pk = case_pk_of(engine, case_id, creditor)
    except CaseNotFound as error:
        fail(f"{error}.")
    resolve_dispute(engine, case_pk, by, note)
    console.print(f"dispute on case {case_id} resolved by {by}", highlight=False)
