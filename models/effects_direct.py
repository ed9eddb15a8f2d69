"""The pooled and per-action learners of per-case action effects, for ``ActionEffects(method="pooled")``
and ``ActionEffects(method="per_action")``.

- ``pooled``: one LightGBM model with the action as a categorical treatment feature (an S-learner),
  on the decisions of every supported action, keyed ``"*"``;
- ``per_action``: one LightGBM model per supported action on that action's decisions (a T-learner).

Each is weighted by the estimator's inverse-propensity weights; the last ``valid_fraction`` of the
rows (in time order) choose the tree count by early stopping on weighted log-loss, the model is then
refitted on every row, and ``members`` bootstrap refits (Poisson(1) row weights) give the interval.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from models.effects_dr import refit


def trees_only(model: lgb.Booster) -> lgb.Booster:
    """A copy holding the trees only (no training data or buffers)."""
    return lgb.Booster(model_str=model.model_to_string())


def fit_direct(
    estimator: Any,
    X: np.ndarray,
    codes: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    names: tuple[str, ...],
    rng: np.random.Generator,
) -> tuple[dict[str, lgb.Booster], dict[str, list[lgb.Booster]], dict[str, int]]:
    """Boosters (``"*"`` for ``pooled``, else one per supported action), bootstrap members and tree
    counts. ``estimator`` is the :class:`models.effects.ActionEffects` (its settings and
    ``supported_``); ``codes`` each row's index in ``names``; ``weight`` its inverse-propensity weight."""
    models: dict[str, lgb.Booster] = {}
    members: dict[str, list[lgb.Booster]] = {}
    trees: dict[str, int] = {}
    if estimator.method == "pooled":
        keep = np.isin(codes, [names.index(a) for a in estimator.supported_])
        data = np.column_stack([X[keep], codes[keep].astype(np.float32)])
        models["*"], members["*"], trees["*"] = _fit_one(
            estimator, data, y[keep], weight[keep], rng, categorical=[data.shape[1] - 1]
        )
    else:
        for name in estimator.supported_:
            rows = codes == names.index(name)
            models[name], members[name], trees[name] = _fit_one(
                estimator, X[rows], y[rows], weight[rows], rng, categorical=[]
            )
    return models, members, trees


def _fit_one(
    estimator: Any,
    data: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    rng: np.random.Generator,
    categorical: list[int],
) -> tuple[lgb.Booster, list[lgb.Booster], int]:
    """One weighted binary model: the booster, its bootstrap members and its tree count."""
    params = estimator._params(len(data))
    cut = len(data) - int(len(data) * estimator.valid_fraction)
    trees = estimator.n_estimators
    if 0 < cut < len(data) and len(np.unique(y[:cut])) == 2 and len(np.unique(y[cut:])) == 2:
        train = lgb.Dataset(
            data[:cut], y[:cut], weight=weight[:cut], categorical_feature=categorical, free_raw_data=False
        )
        valid = lgb.Dataset(data[cut:], y[cut:], weight=weight[cut:], reference=train, categorical_feature=categorical)
        found = lgb.train(
            {**params, "metric": "binary_logloss"},
            train,
            num_boost_round=estimator.n_estimators,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(estimator.early_stopping_rounds, verbose=False)],
        )
        trees = max(1, found.best_iteration or estimator.n_estimators)
    everything = lgb.Dataset(data, y, weight=weight, categorical_feature=categorical, free_raw_data=False)
    model = trees_only(lgb.train(params, everything, num_boost_round=trees))
    members = []
    for _ in range(estimator.members):
        resample = weight * rng.poisson(1.0, len(weight))
        members.append(refit(params, data, y, resample, trees, categorical, int(rng.integers(1 << 30))))
    return model, members, trees
