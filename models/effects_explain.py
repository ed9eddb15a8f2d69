"""What an :class:`models.effects.ActionEffects` estimate rests on: its interval (:func:`interval`,
the bootstrap members' spread) and its inputs' contributions (:func:`contributions`, SHAP values),
for every method; ``ActionEffects.interval`` and ``ActionEffects.contributions`` call these.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from models.effects_dr import BASELINE, odds
from models.effects_surrogate import OUTCOMES, VALUE, member_odds, values_by_outcome

ACTION_FEATURE = "action"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def interval(model: Any, X: np.ndarray, name: str, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Per row, a 95 % interval for the action's probability by the fitted ``model`` from the bootstrap
    members' spread (in log-odds around the model's estimate); NaN for an unsupported action."""
    X = np.asarray(X, dtype=np.float32)
    if name not in model.supported_:
        nan = np.full(len(X), np.nan)
        return nan, nan
    if model.method == "surrogate":
        centre = _logit(model.predict_actions(X, [name], num_threads=1)[:, 0])
        count = len(model.members_.get(VALUE, []))
        if count < 2:  # a model fitted without members: the estimate alone
            p = 1 / (1 + np.exp(-centre))
            return p, p
        code = model.actions_.index(name)
        draws = [
            _logit(
                member_odds(
                    model.models_, model.members_, k, name, X, model.outcomes_, code, model._fixed(), model._adjust()
                )
            )
            for k in range(count)
        ]
        spread = np.std(draws, axis=0, ddof=1)
        return 1 / (1 + np.exp(-(centre - z * spread))), 1 / (1 + np.exp(-(centre + z * spread)))
    booster, members, data = model._rows(X, name)
    base = np.asarray(model.models_[BASELINE].predict(data, num_threads=1)) if model.method == "dr_learner" else None

    def p_of(fit: lgb.Booster) -> np.ndarray:
        estimate = np.asarray(fit.predict(data, num_threads=1))
        return estimate if base is None else odds(base, estimate)

    centre = _logit(p_of(booster))
    if len(members) < 2:
        p = 1 / (1 + np.exp(-centre))
        return p, p
    spread = np.std([_logit(p_of(m)) for m in members], axis=0, ddof=1)
    return 1 / (1 + np.exp(-(centre - z * spread))), 1 / (1 + np.exp(-(centre + z * spread)))


def contributions(model: Any, X: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Per row, each input's contribution to the action's log-odds by the fitted ``model`` (SHAP
    values, LightGBM's ``pred_contrib``; for ``dr_learner``, to its advantage over the logging policy,
    in probability; for ``surrogate``, to the log-odds of the action's most valuable immediate outcome
    for the case) and the inputs' names (the pooled model adds ``action``); no bias term."""
    booster, _, data = model._rows(np.asarray(X, dtype=np.float32), name)
    pooled = model.method == "pooled" or (model.method == "surrogate" and OUTCOMES in model.models_)
    names = list(model.feature_names_in_) + ([ACTION_FEATURE] if pooled else [])
    values = np.asarray(booster.predict(data, pred_contrib=True, num_threads=1))
    if model.method == "surrogate":
        x = np.asarray(X, dtype=np.float32)
        best = np.argmax(values_by_outcome(model.models_, x, model.outcomes_, 1, model._fixed()), axis=1)
        width = len(names) + 1
        values = np.stack([values[i, k * width : (k + 1) * width] for i, k in enumerate(best)])
    return values[:, :-1], names
