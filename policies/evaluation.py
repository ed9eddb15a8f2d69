"""Off-policy evaluation of whole policies at a moment: what the learned policy, the prior-based one,
the best constant action and the logging policy would have achieved, from logged history alone.

At the moment ``as_of`` (a snapshot): every case open then whose next logged action came within
``window`` is one decision, with the facts known at ``as_of`` (decided at the time the logged action
was taken, so that quiet hours and daily caps apply as they did), the action taken, the probability
it was chosen with (recorded, else the action-effect model's propensity model), and what followed:
a settlement in [as_of, as_of + 90 days), and the recovery (that times the recoverable claim,
CNY) net of the action's cost. A candidate policy is the policy engine's choice among the case's
eligible, compliant actions that the logging policy could have taken (an estimated propensity of at
least ``SUPPORT_FLOOR``, or the action taken): nothing else can be evaluated from logs. Each is
estimated by IPS, SNIPS and DR (``training.ope``), with bootstrap intervals and effective sample
sizes; DR's outcome model is the action-effect champion (the priors without one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from concord.settings import Settings
from policies.action_value import PriorValue
from policies.cases import case_inputs
from policies.config import Policy
from policies.engine import PolicyEngine
from policies.facts import Facts
from policies.learned_value import LearnedValue
from policies.scores import ChampionScorer
from training.effects import SUPPORT_FLOOR
from training.ope import greedy, off_policy

HORIZON = pd.Timedelta(days=90)
POLICIES = ("learned", "prior", "constant", "logging")
MEASURES = ("settlement_rate", "net_value_cny")


class EvaluationRefused(Exception):
    """The history cannot evaluate policies at this moment (one sentence says why and what to do)."""


@dataclass
class PolicyEvaluation:
    """The decisions evaluated, each policy's action probabilities and the estimates."""

    as_of: pd.Timestamp
    cases: pd.DataFrame  # case_pk, case_id, creditor, action, at, mu, recorded, settled, claim
    actions: tuple[str, ...]
    policies: dict[str, np.ndarray]  # name -> (cases, actions) probabilities
    table: pd.DataFrame  # policy, measure, estimator, value, low, high, ess, decisions
    notes: list[str]


def default_as_of(events: pd.DataFrame, window: pd.Timedelta) -> pd.Timestamp:
    """The latest local midnight whose decisions' window and 90 days are all in the history."""
    latest = events["at"].max() - HORIZON - window
    return (latest.tz_convert("Asia/Shanghai").floor("D")).tz_convert("UTC")


def logged_next(events: pd.DataFrame, as_of: pd.Timestamp, window: pd.Timedelta) -> pd.DataFrame:
    """Per case: its first event in [as_of, as_of + window) (``action, at, propensity``) and whether
    a settling outcome followed in [as_of, as_of + 90 days)."""
    from concord.vocabulary import SETTLED_OUTCOMES

    after = events[(events["at"] >= as_of) & (events["at"] < as_of + HORIZON)]
    settled = after[after["outcome"].isin(SETTLED_OUTCOMES)]["case_pk"].unique()
    soon = after[after["at"] < as_of + window].sort_values(["case_pk", "at"], kind="stable")
    first = soon.groupby("case_pk", as_index=False).first()[["case_pk", "action", "at", "propensity"]]
    first["settled"] = first["case_pk"].isin(settled).astype(float)
    first["action"] = first["action"].astype(str)
    return first


def _pi_from_engine(decisions: Any, allowed: np.ndarray, logging_pi: np.ndarray, policy: Policy) -> np.ndarray:
    """The engine's choice among ``allowed``, with its exploration; the logging policy where nothing is allowed."""
    pi = greedy(decisions.estimates.value, allowed)
    epsilon = policy.exploration.epsilons(decisions.facts.text("creditor"))
    pool = allowed & policy.exploration.explorable(policy.catalogue)[None, :]
    m = pool.sum(axis=1)
    epsilon = np.where(m > 0, epsilon, 0.0)
    pi = pi * (1 - epsilon[:, None]) + np.where(pool, (epsilon / np.maximum(m, 1))[:, None], 0.0)
    none = ~allowed.any(axis=1)
    pi[none] = logging_pi[none]
    return pi


def constant_policy(allowed: np.ndarray, logging_pi: np.ndarray, j: int) -> np.ndarray:
    """Action ``j`` wherever it is allowed, else the logging policy."""
    return np.where(allowed[:, [j]], np.eye(allowed.shape[1])[j][None, :], logging_pi)


def best_constant(allowed: np.ndarray, logging_pi: np.ndarray, q: np.ndarray) -> int | None:
    """The action whose constant policy has the highest value by the outcome model ``q`` alone
    (decisions x actions; NaN counts as 0), None when no action is allowed anywhere. Chosen without
    the logged rewards: picking the best of several estimates by those same estimates would bias
    the winner's estimate upward (its interval then misses the truth more often than 5 %)."""
    qq = np.nan_to_num(q, nan=0.0)
    best, best_value = None, -np.inf
    for j in np.flatnonzero(allowed.any(axis=0)):
        value = float((constant_policy(allowed, logging_pi, int(j)) * qq).sum(axis=1).mean())
        if value > best_value:
            best, best_value = int(j), value
    return best


def evaluate_policies(
    settings: Settings,
    engine: Any,
    policy: Policy,
    scorer: ChampionScorer,
    learned: LearnedValue | None,
    as_of: dt.datetime | None = None,
    names: tuple[str, ...] = POLICIES,
    window: pd.Timedelta = pd.Timedelta(days=30),
    boot: int = 500,
    seed: int = 0,
) -> PolicyEvaluation:
    """Evaluate the named policies at ``as_of`` (default: the latest moment the history can judge).

    Raises:
        EvaluationRefused: the 90 days after ``as_of`` are not in the history, no case had a
            logged action in the window, or propensities are neither recorded nor estimable.
    """
    from training.effects_data import load_events

    events = load_events(engine)
    if events.empty:
        raise EvaluationRefused("the ledger has no events to evaluate policies on; import the events first")
    stamp = default_as_of(events, window) if as_of is None else pd.Timestamp(as_of).tz_convert("UTC")
    if stamp + HORIZON > events["at"].max():
        raise EvaluationRefused(
            f"the 90 days after {stamp:%Y-%m-%d %H:%M} UTC are not all in the history (its last "
            f"event is at {events['at'].max():%Y-%m-%d}); give an earlier --as-of"
        )
    catalogue = policy.catalogue
    inputs = case_inputs(settings, engine, stamp.to_pydatetime(), catalogue, scorer)
    logged = logged_next(events, stamp, window)
    frame = inputs.frame.merge(logged.rename(columns={"at": "logged_at", "action": "logged_action"}), on="case_pk")
    frame = frame[frame["logged_action"].isin(catalogue.names)].reset_index(drop=True)
    if frame.empty:
        raise EvaluationRefused(
            f"no case open at {stamp:%Y-%m-%d} had a logged action in the {window.days} days "
            "after; choose another --as-of"
        )
    frame["decision_ts"] = pd.to_datetime(frame["logged_at"], utc=True)
    facts = Facts.from_frame(frame)
    n, k = len(frame), len(catalogue.names)
    taken = np.array([catalogue.index(a) for a in frame["logged_action"]])
    recorded = frame["propensity"].to_numpy(dtype=np.float64, na_value=np.nan)
    has = np.isfinite(recorded) & (recorded > 0)
    notes = []
    if learned is not None and hasattr(learned.model, "propensity_"):
        estimated = learned.model.propensity_.of(learned.inputs(facts), catalogue.names)
    elif has.all():
        estimated = np.ones((n, k)) / k
        notes.append("no propensity model: every catalogue action counts as supported")
    else:
        raise EvaluationRefused(
            "the history records no propensities for some decisions and there is no "
            "action-effect model to estimate them; run `concord train --model action_effects`"
        )
    rows = np.arange(n)
    mu = np.where(has, recorded, np.maximum(estimated[rows, taken], SUPPORT_FLOOR))
    support = estimated >= SUPPORT_FLOOR
    support[rows, taken] = True
    logging_pi = estimated * np.where(support, 1.0, 0.0)
    logging_pi[rows, taken] = 0.0
    rest = logging_pi.sum(axis=1, keepdims=True)
    logging_pi = np.where(rest > 0, logging_pi / np.where(rest > 0, rest, 1) * (1 - mu)[:, None], 0.0)
    logging_pi[rows, taken] = mu  # the logging policy's own weights are 1: its estimate is what happened
    prior_engine = PolicyEngine(policy, PriorValue(policy.effects))
    base = prior_engine.decide(facts)
    claim = base.claims.outstanding
    cost = catalogue.costs()
    value_model = learned if learned is not None else prior_engine.action_value
    q_settle = value_model.estimate(facts, catalogue).p_settle
    policies: dict[str, np.ndarray] = {}
    for name in names:
        if name == "learned":
            if learned is None:
                notes.append("no action-effect champion: the learned policy is not evaluated")
                continue
            decisions = PolicyEngine(policy, learned).decide(facts)
            policies["learned"] = _pi_from_engine(
                decisions, decisions.eligible & (decisions.blocked_by == 0) & support, logging_pi, policy
            )
        elif name == "prior":
            policies["prior"] = _pi_from_engine(
                base, base.eligible & (base.blocked_by == 0) & support, logging_pi, policy
            )
        elif name == "logging":
            policies["logging"] = logging_pi
    reward = {
        "settlement_rate": frame["settled"].to_numpy(float),
        "net_value_cny": frame["settled"].to_numpy(float) * claim - cost[taken],
    }
    q = {"settlement_rate": q_settle, "net_value_cny": q_settle * claim[:, None] - cost[None, :]}
    if "constant" in names:
        allowed = base.eligible & (base.blocked_by == 0) & support
        best = best_constant(allowed, logging_pi, q["net_value_cny"])
        if best is not None:
            policies[f"constant:{catalogue.names[best]}"] = constant_policy(allowed, logging_pi, best)
    table = []
    for name, pi in policies.items():
        for measure in MEASURES:
            estimates = off_policy(pi, taken, mu, reward[measure], q[measure], boot=boot, seed=seed)
            for estimator in ("ips", "snips", "dr"):
                e = getattr(estimates, estimator)
                table.append(
                    {
                        "policy": name,
                        "measure": measure,
                        "estimator": estimator,
                        "value": e.value,
                        "low": e.low,
                        "high": e.high,
                        "ess": estimates.ess,
                        "decisions": estimates.decisions,
                    }
                )
    cases = frame[["case_pk", "case_id", "creditor", "logged_action", "logged_at", "settled"]].assign(
        mu=mu, recorded=has, claim=claim
    )
    notes.append(f"{int(has.sum()):,} of {n:,} propensities recorded, the others estimated")
    return PolicyEvaluation(stamp, cases, catalogue.names, policies, pd.DataFrame(table), notes)


def log_evaluation(settings: Settings, evaluation: PolicyEvaluation, versions: dict[str, str]) -> str:
    """Log the estimates to MLflow (metrics ``<policy>.<measure>.<estimator>[_low|_high]``, the
    table as ``evaluation.csv``); returns the run id."""
    import tempfile
    from pathlib import Path

    import mlflow

    from training import registry

    registry.configure(settings)
    with mlflow.start_run(run_name=f"evaluate-policy-{evaluation.as_of:%Y%m%d}") as run:
        mlflow.set_tags(
            {
                "kind": "off-policy evaluation",
                "as_of": str(evaluation.as_of),
                "decisions": str(len(evaluation.cases)),
                **versions,
            }
        )
        for row in evaluation.table.itertuples(index=False):
            key = f"{row.policy.replace(':', '.')}.{row.measure}.{row.estimator}"
            mlflow.log_metrics({key: float(row.value), f"{key}_low": float(row.low), f"{key}_high": float(row.high)})
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "evaluation.csv"
            evaluation.table.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
    return str(run.info.run_id)
