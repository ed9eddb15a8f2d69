"""The surrogate learner of per-case action effects, for ``ActionEffects(method="surrogate")``.

An action reaches the 90-day outcome through what it did at once: the outcome the ledger records
with it (``reached``, ``no_answer``, ``promise_to_pay``, ``agreement`` ...). The 90-day label is one
noisy draw of everything that followed (about five more actions in 90 days); the immediate
outcome is the action's own doing. So (a surrogate index, Athey et al. 2019)::

    P(settled in 90 days | a now, x) = sum over o of P(o | a, x) x V(o, x)

- ``P(o | a, x)``: per action, a multiclass LightGBM model of the immediate outcome on that
  action's decisions, weighted by inverse propensity like the T-learner (large, well-measured
  differences: a call reaches where a letter does not);
- ``V(o, x)``: one binary LightGBM model of the 90-day label on every decision, the immediate
  outcome as a categorical feature and the action *not* a feature: what follows an outcome
  depends on the debtor and the outcome, not on which action produced it (the assumption;
  where it fails, the holdout choice among candidates prefers another method).

With ``pooled_outcomes``, ``P(o | a, x)`` is one multiclass model over every supported action's
decisions, the action a categorical feature (an S-learner of the immediate outcome: actions share
what they have in common about a debtor, and the trees split on the action where it matters).

Outcomes seen in fewer than ``MIN_OUTCOME_SHARE`` of decisions are merged into one class.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from models.effects_dr import _train

VALUE = "~value"  # the key of V(o, x) among the boosters
OUTCOMES = "~outcomes"  # the key of the pooled P(o | a, x), when there is one
MIN_OUTCOME_SHARE = 0.005
OTHER = "~other"


def outcome_codes(outcomes: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """The outcome classes (frequent outcomes, then ``OTHER``) and each decision's class index."""
    values = np.asarray(outcomes, dtype=object).astype(str)
    names, counts = np.unique(values, return_counts=True)
    kept = [str(n) for n, c in zip(names, counts, strict=True) if c >= MIN_OUTCOME_SHARE * len(values)]
    classes = (*kept, OTHER)
    lookup = {name: j for j, name in enumerate(kept)}
    codes = np.array([lookup.get(v, len(kept)) for v in values], dtype=np.int32)
    return classes, codes


def fit_surrogate(estimator: Any, X: np.ndarray, codes: np.ndarray, y: np.ndarray, outcomes: np.ndarray,
                  weight: np.ndarray, names: tuple[str, ...],
                  ) -> tuple[dict[str, lgb.Booster], dict[str, int], tuple[str, ...]]:
    """Boosters (``VALUE`` and one outcome model per supported action), tree counts, outcome classes."""
    X = np.asarray(X, dtype=np.float32)
    classes, o = outcome_codes(outcomes)
    rounds, valid, stop = estimator.n_estimators, estimator.valid_fraction, estimator.early_stopping_rounds
    models: dict[str, lgb.Booster] = {}
    trees: dict[str, int] = {}
    data = np.column_stack([X, o.astype(np.float32)])
    models[VALUE], trees[VALUE] = _train(estimator._params(len(X)), data, y, None, rounds, valid, stop,
                                         categorical=[X.shape[1]])
    if getattr(estimator, "pooled_outcomes", False):
        keep = np.isin(codes, [names.index(a) for a in estimator.supported_])
        data = np.column_stack([X[keep], codes[keep].astype(np.float32)])
        params = {**estimator._params(int(keep.sum())), "objective": "multiclass", "num_class": len(classes)}
        models[OUTCOMES], trees[OUTCOMES] = _train(params, data, o[keep].astype(np.float64), weight[keep], rounds,
                                                   valid, stop, categorical=[X.shape[1]])
        return models, trees, classes
    for name in estimator.supported_:
        rows = codes == names.index(name)
        params = {**estimator._params(int(rows.sum())), "objective": "multiclass", "num_class": len(classes)}
        models[name], trees[name] = _train(params, X[rows], o[rows].astype(np.float64), weight[rows], rounds,
                                           valid, stop)
    return models, trees, classes


def values_by_outcome(models: dict[str, lgb.Booster], X: np.ndarray, classes: tuple[str, ...],
                      num_threads: int = 0) -> np.ndarray:
    """(rows, outcome classes) V(o, x)."""
    out = np.empty((len(X), len(classes)))
    data = np.column_stack([X, np.zeros(len(X), dtype=np.float32)])
    for k in range(len(classes)):
        data[:, -1] = k
        out[:, k] = models[VALUE].predict(data, num_threads=num_threads)
    return out


def outcome_rows(models: dict[str, lgb.Booster], name: str, code: int, X: np.ndarray) -> tuple[lgb.Booster, np.ndarray]:
    """The booster of P(o | ``name``, x) and its input rows (``code``: the action's index, the
    pooled model's last column)."""
    if OUTCOMES in models:
        return models[OUTCOMES], np.column_stack([X, np.full(len(X), code, dtype=np.float32)])
    return models[name], X


def settle_odds(models: dict[str, lgb.Booster], name: str, X: np.ndarray, value: np.ndarray,
                num_threads: int = 0, code: int = 0) -> np.ndarray:
    """P(settled | action ``name``, x) = sum_o P(o | name, x) V(o, x)."""
    booster, data = outcome_rows(models, name, code, X)
    proba = np.asarray(booster.predict(data, num_threads=num_threads)).reshape(len(X), -1)
    return (proba * value[:, : proba.shape[1]]).sum(axis=1)
