"""What the commands run over the ledger: recommendations, the assignment plan and the court list.

Each function loads the cases at ``as_of`` (``policies.cases``), decides with one
:class:`~policies.engine.PolicyEngine` and one :class:`~policies.scores.ChampionScorer` (both built
once by the caller) and shapes the answer; the CLI prints and writes files, the service returns
JSON. Nothing here writes a file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from concord.settings import Settings
from policies.answers import Recommendation
from policies.assignment import assign, performance_factor
from policies.cases import CaseInputs, CaseNotFound, case_inputs, known_courts
from policies.court import court_sheets
from policies.engine import Decisions, PolicyEngine
from policies.facts import Facts
from policies.scores import ChampionScorer
from policies.staffing import current_mediators, mediator_table


def decide_cases(
    settings: Settings,
    engine: Engine,
    as_of: dt.datetime,
    policy_engine: PolicyEngine,
    scorer: ChampionScorer,
    **which: object,
) -> tuple[CaseInputs, Decisions]:
    """Inputs and decisions for the cases open at ``as_of`` (``which``: ``case_pks``, ``court``,
    ``with_names`` as :func:`policies.cases.case_inputs` takes them)."""
    inputs = case_inputs(settings, engine, as_of, policy_engine.policy.catalogue, scorer, **which)  # type: ignore[arg-type]
    return inputs, policy_engine.decide(Facts.from_frame(inputs.frame))


def recommend_all(
    settings: Settings, engine: Engine, as_of: dt.datetime, policy_engine: PolicyEngine, scorer: ChampionScorer
) -> pd.DataFrame:
    """One row per case open at ``as_of``: the batch answer (``policies.answers.batch_frame``)."""
    from policies.answers import batch_frame

    inputs, decisions = decide_cases(settings, engine, as_of, policy_engine, scorer)
    return batch_frame(decisions, policy_engine, inputs.frame)


def recommend_case(
    settings: Settings,
    engine: Engine,
    as_of: dt.datetime,
    policy_engine: PolicyEngine,
    scorer: ChampionScorer,
    case_pk: int,
) -> Recommendation:
    """One case's answer at ``as_of``, with the top reasons behind its scores."""
    inputs = case_inputs(settings, engine, as_of, policy_engine.policy.catalogue, scorer, case_pks=[case_pk])
    row = inputs.frame.iloc[0].to_dict()
    reasons = scorer.reasons(inputs.features)[0]
    return policy_engine.recommend_one(row, reasons=reasons, model_versions=scorer.versions)


@dataclass(frozen=True)
class AssignmentPlan:
    """Per case: ``case_id, creditor, province, product, mediator_id ('' unassigned),
    expected_recovery, reason`` (and ``case_pk``); per mediator: capacity, load before, assigned,
    load after, expected recovery of the cases assigned."""

    cases: pd.DataFrame
    mediators: pd.DataFrame


def plan_assignment(
    settings: Settings,
    engine: Engine,
    as_of: dt.datetime,
    policy_engine: PolicyEngine,
    scorer: ChampionScorer,
    *,
    rebalance: bool = False,
) -> AssignmentPlan:
    """Assign the open cases without a mediator (every open case with ``rebalance``) at ``as_of``.
    A case's expected recovery is its settlement odds times its recoverable claim (CNY)."""
    inputs, decisions = decide_cases(settings, engine, as_of, policy_engine, scorer)
    frame = inputs.frame
    holders = current_mediators(engine, as_of, frame["case_pk"].tolist())
    if rebalance:
        holders[:] = ""
    mediators = mediator_table(engine, as_of, holders)
    mediators["performance"] = performance_factor(
        mediators["cases_worked"].to_numpy(), mediators["cases_settled"].to_numpy(), policy_engine.policy.assignment
    )
    todo = holders.to_numpy() == ""
    cases = pd.DataFrame(
        {
            "case_pk": frame["case_pk"].to_numpy()[todo],
            "case_id": frame["case_id"].to_numpy()[todo],
            "creditor": frame["creditor"].to_numpy()[todo],
            "province": frame["province"].to_numpy()[todo],
            "product": frame["product"].to_numpy()[todo],
            "expected_recovery": (decisions.facts["p_settle"] * decisions.claims.outstanding)[todo],
        }
    )
    result = assign(cases, mediators, policy_engine.policy.assignment)
    cases["mediator_id"] = result.mediator_id
    cases["expected_recovery"] = np.round(result.expected_recovery, 2)
    cases["reason"] = result.reason
    assigned = cases[cases["mediator_id"] != ""]
    summary = mediators[["mediator_id", "capacity", "load"]].rename(columns={"load": "load_before"})
    summary["assigned"] = summary["mediator_id"].map(assigned["mediator_id"].value_counts()).fillna(0).astype(int)
    summary["load_after"] = summary["load_before"] + summary["assigned"]
    summary["expected_recovery"] = (
        summary["mediator_id"].map(assigned.groupby("mediator_id")["expected_recovery"].sum()).fillna(0.0).round(2)
    )
    summary["performance"] = mediators["performance"].round(3)
    return AssignmentPlan(cases=cases, mediators=summary)


def court_list(
    settings: Settings,
    engine: Engine,
    as_of: dt.datetime,
    policy_engine: PolicyEngine,
    scorer: ChampionScorer,
    court: str,
) -> dict[str, pd.DataFrame]:
    """A court's list: one frame per route (sheet name -> rows with Chinese headers).

    Raises:
        CaseNotFound: no case names the court.
    """
    courts = known_courts(engine)
    if court not in courts:
        shown = ", ".join(courts[:5]) + (" ..." if len(courts) > 5 else "")
        raise CaseNotFound(f"no case in the ledger names the court '{court}' (courts: {shown or 'none'})")
    inputs, decisions = decide_cases(settings, engine, as_of, policy_engine, scorer, court=court, with_names=True)
    names = np.asarray(policy_engine.policy.catalogue.names, dtype=object)
    return court_sheets(
        inputs.frame,
        decisions.facts,
        decisions.claims,
        policy_engine.policy.claims,
        policy_engine.policy.court,
        names[decisions.chosen],
        decisions.value,
        decisions.stage,
        decisions.workflow,
        decisions.limitation_day,
    )
