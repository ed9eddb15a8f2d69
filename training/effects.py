"""Training the action-effect model: propensities, the method chosen by measurement, refit, MLflow.

``train_effects`` is what ``concord train --model action_effects`` runs:

1. the logged decisions up to the as-of (:mod:`training.effects_data`);
2. the logging policy's propensities: a multiclass model of the action taken (always fitted: it
   also says which actions each debtor could have got), used where the history records none;
   its overlap diagnostics per action;
3. out of time (decisions from the newest 20 % of the period, models fitted on decisions whose
   90-day windows had closed before it), each candidate of ``METHODS`` (pooled, pooled without
   weights, per action, DR-learner, surrogate with one pooled outcome model or one per action:
   :class:`models.effects.ActionEffects`) is fitted and its greedy policy
   (the action of highest estimated settlement odds among those the logging policy gave at least
   ``SUPPORT_FLOOR`` probability) is valued off policy; the candidate with the higher
   self-normalised IPS value is chosen (model-free: no candidate's outcome model grades its own
   policy), DR and IPS are logged beside it; a candidate other than the default (the surrogate
   when the decisions carry outcomes) is chosen only when its paired SNIPS difference's interval
   is above 0;
4. the chosen method refitted on every decision, with bootstrap members for intervals;
5. refusals (no decisions, too few settlements, no action supported) with one sentence.

Logging and registration are in :mod:`training.effects_tracking`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from concord.settings import Settings
from models.effects import ActionEffects, LoggingPropensity
from training import labels as label_defs
from training.checks import TrainingRefused
from training.effects_data import LoggedDecisions, logged_decisions
from training.ope import PolicyEstimates, greedy, off_policy, snips_difference

Step = Callable[[str], None]
# Candidate methods (name -> ActionEffects settings); the holdout's DR value chooses among them.
METHODS: dict[str, dict[str, Any]] = {
    "pooled": {"method": "pooled"},
    "pooled_unweighted": {"method": "pooled", "weight_clip": 1.0},
    "per_action": {"method": "per_action"},
    "dr_learner": {"method": "dr_learner"},
    # one bagged refit of V, none of P (docs/policies.md, "Variance within the
    # prediction budget": better rankings, recommend --all under 2 minutes);
    # the odds of settling at once adjusted per action on 5 features ("A
    # per-action adjustment of settling at once")
    "surrogate": {"method": "surrogate", "pooled_outcomes": True, "bag": 1, "outcome_bag": 0, "settle_adjust": 5},
    "surrogate_per_action": {"method": "surrogate"},
}
# Without a clear holdout difference (SNIPS on one world's holdout is noisy), the first of these
# present is chosen: the surrogate uses the most information per decision (its immediate outcome).
DEFAULT_ORDER = ("surrogate", "pooled")
SUPPORT_FLOOR = 0.02  # an action the logging policy gave less than this is not one the debtor could get
HOLDOUT_SHARE = 0.2
MIN_SETTLED = 30


@dataclass
class EffectsResult:
    """A trained action-effect model and the evidence for it."""

    model: ActionEffects  # refitted on every decision, with its propensity model (``propensity_``)
    evaluation_model: ActionEffects  # the chosen method fitted before the holdout
    chosen: str
    candidates: pd.DataFrame  # per method: DR / SNIPS value of its policy on the holdout, log-loss
    overlap: pd.DataFrame  # per action: decisions, recorded share, propensities, support, fallback
    holdout: pd.DataFrame  # the holdout decisions: features, action, mu, label
    features: list[str]
    rows: int
    time_range: tuple[pd.Timestamp, pd.Timestamp]
    holdout_from: pd.Timestamp
    policy_value: PolicyEstimates  # the chosen method's greedy policy on the holdout (settlement rate)
    logging_value: float  # the settlement rate the logging policy achieved on the holdout
    extra: dict[str, Any] = field(default_factory=dict)


def logging_propensities(model: LoggingPropensity, data: LoggedDecisions) -> tuple[np.ndarray, np.ndarray]:
    """Per decision: the propensity of the action taken (recorded, else estimated, at least
    ``SUPPORT_FLOOR``) and whether it was recorded."""
    estimated = model.of(data.values, model.actions_)
    codes = np.searchsorted(np.asarray(model.actions_, dtype=object), data.actions.astype(object))
    own = estimated[np.arange(len(data)), codes]
    recorded = data.propensity
    has = np.isfinite(recorded) & (recorded > 0)
    return np.where(has, recorded, np.maximum(own, SUPPORT_FLOOR)), has


def overlap_table(
    data: LoggedDecisions, propensity: LoggingPropensity, mu: np.ndarray, recorded: np.ndarray, fallback: dict[str, str]
) -> pd.DataFrame:
    """Per action: decisions, settled share, recorded share, the estimated propensity of the
    action where taken (min, 5th and 50th percentile), the share of all decisions where the
    logging policy gave it at least the floor, the effective sample size of its inverse weights,
    and whether the model estimates it (else why not)."""
    estimated = propensity.of(data.values, propensity.actions_)
    rows = []
    for j, name in enumerate(propensity.actions_):
        taken = data.actions == name
        own = estimated[taken, j]
        w = 1.0 / mu[taken]
        rows.append(
            {
                "action": name,
                "decisions": int(taken.sum()),
                "settled_share": float(data.labels[taken].mean()),
                "recorded_share": float(recorded[taken].mean()),
                "propensity_min": float(own.min()),
                "propensity_p05": float(np.percentile(own, 5)),
                "propensity_p50": float(np.median(own)),
                "support_share": float((estimated[:, j] >= SUPPORT_FLOOR).mean()),
                "ess": float(w.sum() ** 2 / (w**2).sum()),
                "estimated_by_model": not fallback.get(name, "no history"),
                "fallback_reason": fallback.get(name, "no history"),
            }
        )
    return pd.DataFrame(rows)


def fit_model(
    settings: dict[str, Any], data: LoggedDecisions, mu: np.ndarray, propensity: LoggingPropensity
) -> ActionEffects:
    """An :class:`ActionEffects` with ``settings`` fitted on ``data`` (the support of each action
    from the propensity model, the cases as cross-fitting groups)."""
    names = sorted({str(a) for a in data.actions})
    support = propensity.of(data.values, names) >= SUPPORT_FLOOR
    meta = data.meta
    return ActionEffects(**settings).fit(
        data.values,
        data.actions,
        data.labels,
        mu,
        data.features,
        support=support,
        groups=meta["case_pk"].to_numpy() if "case_pk" in meta else None,
        outcomes=meta["outcome"].astype(str).to_numpy() if "outcome" in meta else None,
    )


def holdout_value(
    model: ActionEffects, propensity: LoggingPropensity, holdout: LoggedDecisions, mu: np.ndarray, seed: int = 0
) -> tuple[PolicyEstimates, np.ndarray, np.ndarray]:
    """DR, IPS and SNIPS of the model's greedy policy on ``holdout`` (settlement rate), the
    model's estimates there and the policy (decisions x actions)."""
    actions = propensity.actions_
    support = propensity.of(holdout.values, actions) >= SUPPORT_FLOOR
    logged = np.searchsorted(np.asarray(actions, dtype=object), holdout.actions.astype(object))
    support[np.arange(len(holdout)), logged] = True
    q = model.predict_actions(holdout.values, actions)
    pi = greedy(q, support & np.isfinite(q))
    # Where the model estimates none of the supported actions, the policy is the logging one.
    none = pi.sum(axis=1) == 0
    pi[none] = propensity.of(holdout.values[none], actions)
    estimates = off_policy(pi, logged, mu, holdout.labels.astype(float), q, seed=seed)
    return estimates, q, pi


def _weighted_log_loss(q: np.ndarray, holdout: LoggedDecisions, actions: tuple[str, ...], mu: np.ndarray) -> float:
    logged = np.searchsorted(np.asarray(actions, dtype=object), holdout.actions.astype(object))
    p = np.clip(q[np.arange(len(holdout)), logged], 1e-6, 1 - 1e-6)
    keep = np.isfinite(p)
    y, w = holdout.labels[keep], 1.0 / mu[keep]
    return float(-(w * (y * np.log(p[keep]) + (1 - y) * np.log(1 - p[keep]))).sum() / w.sum())


def choose(
    table: pd.DataFrame,
    policies: dict[str, np.ndarray],
    propensity: LoggingPropensity,
    holdout: LoggedDecisions,
    mu: np.ndarray,
) -> str:
    """The candidate with the highest holdout SNIPS value, if it beats the default method
    (``DEFAULT_ORDER``'s first candidate present) by more than noise (the paired bootstrap 95 %
    interval of the difference above 0); else the default. Records the difference in ``table``."""
    best = str(table.loc[table["snips"].idxmax(), "method"])
    default = next((m for m in DEFAULT_ORDER if m in policies), best)
    logged = np.searchsorted(np.asarray(propensity.actions_, dtype=object), holdout.actions.astype(object))
    reward = holdout.labels.astype(float)
    for method in policies:
        diff = snips_difference(policies[method], policies[default], logged, mu, reward)
        table.loc[table["method"] == method, ["snips_minus_default", "snips_minus_default_low"]] = (
            diff.value,
            diff.low,
        )
    beats = table.loc[table["method"] == best, "snips_minus_default_low"].iloc[0] > 0
    return best if beats else default


def split(data: LoggedDecisions) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Rows fitted before the holdout (their windows closed before it began) and the holdout."""
    times = pd.to_datetime(data.meta["decision_ts"], utc=True)
    start = times.quantile(1 - HOLDOUT_SHARE)
    fit_rows = np.flatnonzero((times + label_defs.SETTLEMENT.horizon <= start).to_numpy())
    holdout_rows = np.flatnonzero((times >= start).to_numpy())
    return fit_rows, holdout_rows, start


def fit_effects(
    data: LoggedDecisions,
    params: dict[str, Any] | None = None,
    step: Step | None = None,
    methods: tuple[str, ...] = tuple(METHODS),
) -> EffectsResult:
    """Propensities, out-of-time choice of method, refit (see the module doc).

    Raises :class:`~training.checks.TrainingRefused` when the decisions cannot give a model."""
    params = dict(params or {})
    if len(data) == 0:
        raise TrainingRefused(
            "action_effects: the ledger has no events whose 90-day window has closed; "
            "import more history or move --as-of later"
        )
    settled = int(data.labels.sum())
    if settled < MIN_SETTLED or len(data) - settled < MIN_SETTLED:
        raise TrainingRefused(
            f"action_effects: {settled} of {len(data):,} decisions settled within 90 days; "
            f"at least {MIN_SETTLED} of each outcome are needed"
        )
    if step:
        step(f"action_effects: the logging policy's propensities over {len(data):,} decisions")
    propensity = LoggingPropensity().fit(data.values, data.actions, data.features)
    mu, recorded = logging_propensities(propensity, data)
    fit_rows, holdout_rows, holdout_from = split(data)
    if len(fit_rows) == 0 or len(holdout_rows) == 0:
        raise TrainingRefused(
            "action_effects: the history is too short for an out-of-time check (the decisions "
            "before the newest fifth must be more than 90 days older than it)"
        )
    past, holdout = data.rows(fit_rows), data.rows(holdout_rows)
    past_mu, holdout_mu = mu[fit_rows], mu[holdout_rows]
    candidates, fitted, policies = [], {}, {}
    if "outcome" not in data.meta:  # decisions without their immediate outcomes: no surrogate
        methods = tuple(m for m in methods if METHODS[m].get("method") != "surrogate")
    for method in methods:
        if step:
            step(f"action_effects: {method} fitted on {len(past):,} decisions, valued on {len(holdout):,}")
        settings = {**params, **METHODS[method], "members": 0}
        model = fit_model(settings, past, past_mu, propensity)
        value, q, pi = holdout_value(model, propensity, holdout, holdout_mu)
        fitted[method] = (model, value)
        policies[method] = pi
        candidates.append(
            {
                "method": method,
                **value.as_dict(),
                "weighted_log_loss": _weighted_log_loss(q, holdout, propensity.actions_, holdout_mu),
                "supported_actions": len(model.supported_),
            }
        )
    table = pd.DataFrame(candidates)
    # Chosen by SNIPS, not DR: DR's direct term would let each candidate's own outcome model grade
    # its own policy, and a model that extrapolates optimistically to actions seldom logged in a
    # context would win on its own optimism (measured: a per-action model's DR 0.103 against the
    # truth's 0.04 on the different-actions world). SNIPS is noisy: only a clear win moves the
    # choice away from the default method (``choose``).
    chosen = choose(table, policies, propensity, holdout, holdout_mu)
    if step:
        step(f"action_effects: {chosen} refitted on all {len(data):,} decisions")
    model = fit_model({**params, **METHODS[chosen]}, data, mu, propensity)
    if not model.supported_:
        reasons = "; ".join(f"{name}: {why}" for name, why in model.fallback_.items())
        raise TrainingRefused(f"action_effects: no action has enough history and overlap to be estimated ({reasons})")
    model.propensity_ = propensity
    times = pd.to_datetime(data.meta["decision_ts"], utc=True)
    frame = pd.DataFrame(holdout.values, columns=data.features)
    frame["action"], frame["mu"], frame["label"] = holdout.actions, holdout_mu, holdout.labels
    return EffectsResult(
        model=model,
        evaluation_model=fitted[chosen][0],
        chosen=chosen,
        candidates=table,
        overlap=overlap_table(data, propensity, mu, recorded, model.fallback_),
        holdout=frame,
        features=list(data.features),
        rows=len(data),
        time_range=(times.iloc[0], times.iloc[-1]),
        holdout_from=holdout_from,
        policy_value=fitted[chosen][1],
        logging_value=float(holdout.labels.mean()),
        extra={
            "recorded_propensity_share": round(float(recorded.mean()), 4),
            "propensity_trees": getattr(propensity, "trees_", 0),
        },
    )


def prepare_effects(
    settings: Settings, as_of: dt.datetime, params: dict[str, Any] | None = None, step: Step | None = None
) -> EffectsResult:
    """Build the decisions up to ``as_of`` and fit (nothing registered)."""
    if step:
        step("action_effects: reading the logged decisions and their features")
    return fit_effects(logged_decisions(settings, as_of), params, step)
