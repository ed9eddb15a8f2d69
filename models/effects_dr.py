"""The doubly robust learner (DR-learner) of per-case action effects, for ``ActionEffects(method="dr_learner")``.

A T- or S-learner ranks actions by the difference of two separately noisy estimates of the
outcome; where an action's effect on the 90-day outcome is small next to that noise, the
ranking is mostly noise. The DR-learner estimates the difference itself (Kennedy 2023):

1. cross-fitted nuisance models (``folds`` folds by case): per action a, mu_a(x) = P(settled |
   a taken, x) (LightGBM on that action's decisions), and m(x) = P(settled | x) under the logging
   policy (on every decision);
2. per decision and action a where the logging policy could have taken a (``support``), the doubly
   robust pseudo-outcome of a's advantage over the logging policy,
   ``phi_a = mu_a(x) + 1[A = a] (y - mu_a(x)) / e(x) - m(x)``, with e the probability the
   logging policy chose the action taken (recorded, else estimated), clipped at ``weight_clip``;
3. per action, a strongly regularised LightGBM regression tau_a(x) of phi_a on the features.

An action's settlement odds are m(x) + tau_a(x), clipped into (0, 1). With little signal the
regression shrinks to a constant per action (the action's average advantage where it was
supported), so the policy falls back on the best action on average, not on noise.
"""

from __future__ import annotations

from typing import Any, Literal

import lightgbm as lgb
import numpy as np

BASELINE = "~baseline"  # the key of m(x), the logging policy's settlement odds, among the boosters
P_FLOOR = 1e-4
SHORT_ROUNDS = 30


METRICS = {"binary": "binary_logloss", "multiclass": "multi_logloss", "regression": "l2"}


def refit(
    params: dict[str, Any],
    data: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None,
    trees: int,
    categorical: list[int] | None = None,
    seed: int | None = None,
) -> lgb.Booster:
    """``trees`` rounds on every row (a bootstrap member's or a bagged refit's weights), with LightGBM's
    ``seed`` when given; a copy holding the trees only."""
    cats: list[int] | Literal["auto"] = categorical or "auto"
    booster = lgb.train(
        params if seed is None else {**params, "seed": seed},
        lgb.Dataset(data, y, weight=weight, categorical_feature=cats),
        num_boost_round=trees,
    )
    return lgb.Booster(model_str=booster.model_to_string())


def _train(
    params: dict[str, Any],
    data: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None,
    rounds: int,
    valid_fraction: float,
    stopping: int,
    categorical: list[int] | None = None,
) -> tuple[lgb.Booster, int]:
    """Train with early stopping on the newest ``valid_fraction`` (rows in time order), then refit on all."""
    cut = len(data) - int(len(data) * valid_fraction)
    classes = params["objective"] != "regression"
    usable = 0 < cut < len(data) and (not classes or (len(np.unique(y[:cut])) >= 2 and len(np.unique(y[cut:])) >= 2))
    # Without a validation set with every outcome, a short model: nothing tells how long to grow it
    # (an action with one outcome, such as a close, would otherwise get every round x every class).
    trees = rounds if usable or not classes else min(rounds, SHORT_ROUNDS)
    cats: list[int] | Literal["auto"] = categorical or "auto"
    if usable:
        w_fit, w_valid = (None, None) if weight is None else (weight[:cut], weight[cut:])
        train = lgb.Dataset(data[:cut], y[:cut], weight=w_fit, free_raw_data=False, categorical_feature=cats)
        valid = lgb.Dataset(data[cut:], y[cut:], weight=w_valid, reference=train, categorical_feature=cats)
        found = lgb.train(
            {**params, "metric": METRICS[params["objective"]]},
            train,
            num_boost_round=rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(stopping, verbose=False)],
        )
        trees = max(1, found.best_iteration or rounds)
    model = lgb.train(params, lgb.Dataset(data, y, weight=weight, categorical_feature=cats), num_boost_round=trees)
    return lgb.Booster(model_str=model.model_to_string()), trees


def fold_of(groups: np.ndarray | None, n: int, folds: int, seed: int) -> np.ndarray:
    """Each row's fold; rows of one group (a case) share one."""
    if groups is None:
        return np.random.default_rng(seed).integers(0, folds, n)
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    draw = np.random.default_rng(seed).integers(0, folds, inverse.max() + 1 if n else 0)
    return draw[inverse]


def fit_dr(
    estimator: Any,
    X: np.ndarray,
    codes: np.ndarray,
    y: np.ndarray,
    propensity: np.ndarray,
    names: tuple[str, ...],
    support: np.ndarray | None,
    groups: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[dict[str, lgb.Booster], dict[str, list[lgb.Booster]], dict[str, int]]:
    """Boosters (``BASELINE`` and one per supported action), bootstrap members and tree counts.

    ``estimator`` is the :class:`models.effects.ActionEffects` (its settings); ``propensity`` the
    probability of the action taken (NaN: 1); ``support`` (rows x ``names``, bool) where each action
    could have been taken (None: everywhere)."""
    e = np.maximum(np.where(np.isnan(propensity), 1.0, propensity), 1.0 / estimator.weight_clip)
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    nuisance = estimator._params(n)
    fold = fold_of(groups, n, estimator.folds, estimator.random_state)
    rounds, valid, stop = estimator.n_estimators, estimator.valid_fraction, estimator.early_stopping_rounds
    m_hat = np.full(n, float(np.mean(y)))
    mu_hat = {name: np.full(n, np.nan) for name in estimator.supported_}
    for k in range(estimator.folds):
        out, inside = fold == k, fold != k
        if not out.any() or not inside.any():
            continue
        model, _ = _train(nuisance, X[inside], y[inside], None, rounds, valid, stop)
        m_hat[out] = model.predict(X[out], num_threads=estimator.n_jobs)
        for name in estimator.supported_:
            rows = inside & (codes == names.index(name))
            if rows.sum() < 2 or len(np.unique(y[rows])) < 2:
                mu_hat[name][out] = float(y[rows].mean()) if rows.any() else float(np.mean(y))
                continue
            model, _ = _train(estimator._params(int(rows.sum())), X[rows], y[rows], None, rounds, valid, stop)
            mu_hat[name][out] = model.predict(X[out], num_threads=estimator.n_jobs)
    models: dict[str, lgb.Booster] = {}
    members: dict[str, list[lgb.Booster]] = {}
    trees: dict[str, int] = {}
    models[BASELINE], trees[BASELINE] = _train(nuisance, X, y, None, rounds, valid, stop)
    members[BASELINE] = []
    final = {
        **estimator._params(n),
        "objective": "regression",
        "num_leaves": estimator.dr_leaves,
        "lambda_l2": estimator.dr_lambda,
        "learning_rate": estimator.learning_rate / 2,
    }
    for name in estimator.supported_:
        a = names.index(name)
        rows = np.flatnonzero(support[:, a] | (codes == a)) if support is not None else np.arange(n)
        taken = codes[rows] == a
        mu = mu_hat[name][rows]
        phi = mu + taken * (y[rows] - mu) / e[rows] - m_hat[rows]
        params = {**final, "min_data_in_leaf": max(100, int(estimator.dr_child_share * len(rows)))}
        models[name], trees[name] = _train(params, X[rows], phi, None, rounds, valid, stop)
        members[name] = []
        for _ in range(estimator.members):
            seed = int(rng.integers(1 << 30))
            members[name].append(
                refit(params, X[rows], phi, rng.poisson(1.0, len(rows)).astype(np.float64), trees[name], seed=seed)
            )
    return models, members, trees


def odds(baseline: np.ndarray, advantage: np.ndarray) -> np.ndarray:
    """Settlement odds from the logging policy's odds and an action's estimated advantage."""
    return np.clip(baseline + advantage, P_FLOOR, 1 - P_FLOOR)
