"""Action-effect models: P(settled within the horizon | this action is taken now), per case and action,
and the logging policy's propensities, both learnt from logged decisions.

:class:`ActionEffects` fits one of four methods on the logged decisions (features before the
decision, the action taken, its 0/1 outcome, the probability the logging policy chose it with):

- ``pooled``: one LightGBM model with the action as a categorical treatment feature (an S-learner);
- ``per_action``: one LightGBM model per action on that action's decisions (a T-learner)
  (both :mod:`models.effects_direct`);
- ``dr_learner``: the logging policy's odds plus each action's advantage over it, regressed on
  cross-fitted doubly robust pseudo-outcomes (:mod:`models.effects_dr`);
- ``surrogate``: each action's odds of each immediate outcome (reached, promise, agreement ...)
  times the 90-day odds after that outcome (:mod:`models.effects_surrogate`).

The first two weight each decision by its inverse propensity (clipped at ``weight_clip``, then scaled so
that each action's weights sum to its count), so that every action's outcomes are learnt over the
mix of debtors all decisions cover, not only those the logging policy sent it to. Training
(``training.effects``) chooses the method by measurement. An action is *supported* when it has at
least ``min_decisions`` decisions of which at least ``min_choice_share`` were real choices
(propensity below 0.95); the others are not estimated (NaN), and the caller falls back on its
prior, saying so. ``members`` bootstrap refits give each estimate an interval (every method;
:mod:`models.effects_explain`, with the inputs' contributions);
the surrogate's estimate averages ``bag`` + 1 fits of its value model and ``outcome_bag`` + 1 of
its outcome model (other seeds; the raw scores' mean); with ``settled_value`` (the default) its value
of an immediate settlement is 1, not learnt; with ``settle_adjust`` = k its pooled outcome model's
odds of settling at once get a per-action logistic adjustment on k features, with ``settle_knots``
hinges each (:mod:`models.effects_rare`: the trees shrink a rare class's action-by-trait interactions).
:class:`LoggingPropensity` is a multiclass LightGBM model of the logging policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator

from models.effects_direct import fit_direct, trees_only
from models.effects_dr import BASELINE, fit_dr, odds
from models.effects_explain import contributions, interval
from models.effects_prepared import predict_prepared, prepared
from models.effects_rare import SettleAdjust, adjusted
from models.effects_surrogate import (
    OUTCOMES,
    bag_sets,
    fit_surrogate,
    fixed_values,
    outcome_proba,
    outcome_rows,
    settle_adjustment,
    values_by_outcome,
)

CHOICE_BELOW = 0.95  # a decision taken with a lower probability was a real choice among actions


class ActionEffects(BaseEstimator):
    """P(outcome within the horizon | action now) for each supported action (see the module doc).

    ``fit`` takes the rows in time order: the last ``valid_fraction`` of them choose the tree
    count (early stopping on weighted log-loss); the model is then refitted on every row.
    """

    def __init__(
        self,
        method: str = "pooled",
        n_estimators: int = 400,
        learning_rate: float = 0.08,
        num_leaves: int = 31,
        min_child_share: float = 0.005,
        colsample_bytree: float = 0.8,
        subsample: float = 0.8,
        reg_lambda: float = 1.0,
        weight_clip: float = 20.0,
        min_decisions: int = 200,
        min_choice_share: float = 0.05,
        members: int = 3,
        valid_fraction: float = 0.2,
        early_stopping_rounds: int = 30,
        random_state: int = 0,
        n_jobs: int = 1,
        folds: int = 2,
        dr_leaves: int = 15,
        dr_lambda: float = 10.0,
        dr_child_share: float = 0.02,
        pooled_outcomes: bool = False,
        bag: int = 0,
        outcome_bag: int | None = None,
        settled_value: bool = True,
        settle_adjust: int = 0,
        settle_lambda: float = 1.0,
        settle_knots: int = 0,
    ) -> None:
        self.method = method
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_share = min_child_share
        self.colsample_bytree = colsample_bytree
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.weight_clip = weight_clip
        self.min_decisions = min_decisions
        self.min_choice_share = min_choice_share
        self.members = members
        self.valid_fraction = valid_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.folds = folds
        self.dr_leaves = dr_leaves
        self.dr_lambda = dr_lambda
        self.dr_child_share = dr_child_share
        self.pooled_outcomes = pooled_outcomes
        self.bag = bag
        self.outcome_bag = outcome_bag
        self.settled_value = settled_value
        self.settle_adjust = settle_adjust
        self.settle_lambda, self.settle_knots = settle_lambda, settle_knots

    # ----------------------------------------------------------------------------- fitting
    def _params(self, rows: int) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": max(50, int(self.min_child_share * rows)),
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            "num_threads": self.n_jobs,
            "feature_pre_filter": False,
            "verbosity": -1,
            "max_cat_to_onehot": 64,
        }

    def weights(self, actions: np.ndarray, propensity: np.ndarray) -> np.ndarray:
        """Stabilised inverse-propensity weights: 1 / max(p, 1 / weight_clip), each action's
        weights scaled to sum to its count (missing propensities count as 1)."""
        p = np.where(np.isnan(propensity), 1.0, propensity)
        w = 1.0 / np.maximum(p, 1.0 / self.weight_clip)
        out = np.empty_like(w)
        for code in np.unique(actions):
            rows = actions == code
            out[rows] = w[rows] * rows.sum() / w[rows].sum()
        return out

    def support(self, actions: np.ndarray, propensity: np.ndarray, names: Sequence[str]) -> dict[str, str]:
        """Per action name: '' when supported, else why it is not (one phrase)."""
        out = {}
        for code, name in enumerate(names):
            taken = actions == code
            count = int(taken.sum())
            p = propensity[taken]
            choice = float(np.mean(np.where(np.isnan(p), 1.0, p) < CHOICE_BELOW)) if count else 0.0
            if count < self.min_decisions:
                out[name] = f"too little history: {count} decisions (at least {self.min_decisions} needed)"
            elif choice < self.min_choice_share:
                out[name] = (
                    f"too little overlap: a real choice (probability below {CHOICE_BELOW}) in "
                    f"{choice:.1%} of its {count} decisions (at least {self.min_choice_share:.0%} needed)"
                )
            else:
                out[name] = ""
        return out

    def fit(
        self,
        X: np.ndarray,
        actions: Sequence[str] | np.ndarray,
        y: np.ndarray,
        propensity: np.ndarray,
        features: Sequence[str],
        support: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        outcomes: np.ndarray | None = None,
    ) -> ActionEffects:
        """Fit on ``X`` (rows in time order, float32, columns ``features``), the action name of each
        row, its 0/1 outcome and the logging propensity (NaN where unknown); returns self.
        ``dr_learner`` also reads ``support`` (rows x sorted action names, bool: where the logging
        policy could have taken each action; None: everywhere) and ``groups`` (each row's case, for
        the cross-fitting folds); ``surrogate`` reads ``outcomes`` (each decision's immediate outcome)."""
        names = sorted({str(a) for a in actions})
        codes = np.searchsorted(np.asarray(names, dtype=object), np.asarray(actions, dtype=object))
        y = np.asarray(y, dtype=np.float64)
        propensity = np.asarray(propensity, dtype=np.float64)
        self.actions_ = tuple(names)
        self.feature_names_in_ = np.asarray(list(features), dtype=object)
        self.n_features_in_ = len(features)
        self.fallback_ = self.support(codes, propensity, names)
        self.counts_ = {name: int((codes == j).sum()) for j, name in enumerate(names)}
        self.supported_ = tuple(name for name in names if not self.fallback_[name])
        weight = self.weights(codes, propensity)
        rng = np.random.default_rng(self.random_state)
        self.models_: dict[str, lgb.Booster] = {}
        self.members_: dict[str, list[lgb.Booster]] = {}
        self.trees_: dict[str, int] = {}
        if self.method in ("pooled", "per_action"):
            self.models_, self.members_, self.trees_ = fit_direct(self, X, codes, y, weight, self.actions_, rng)
        elif self.method == "dr_learner":
            self.models_, self.members_, self.trees_ = fit_dr(
                self, X, codes, y, propensity, self.actions_, support, groups, rng
            )
        elif self.method == "surrogate":
            if outcomes is None:
                raise ValueError("the surrogate method needs each decision's immediate outcome")
            self.models_, self.trees_, self.outcomes_, self.members_, classes = fit_surrogate(
                self, X, codes, y, outcomes, weight, self.actions_, groups, rng
            )
            self.fixed_values_ = fixed_values(self.outcomes_) if self.settled_value else {}
            self.adjust_ = settle_adjustment(self, X, codes, classes, weight)
            if OUTCOMES in self.models_:
                self.prepared_ = prepared(self.models_, self.members_)
        else:
            raise ValueError(f"unknown method '{self.method}' (pooled, per_action, dr_learner or surrogate)")
        return self

    # ----------------------------------------------------------------------------- predicting
    def _rows(self, X: np.ndarray, name: str) -> tuple[lgb.Booster, list[lgb.Booster], np.ndarray]:
        if self.method == "surrogate" and OUTCOMES in self.models_:
            x = X.astype(np.float32, copy=False)
            booster, data = outcome_rows(self.models_, name, self.actions_.index(name), x)
            return booster, [], data
        if self.method == "pooled":
            code = np.full((len(X), 1), self.actions_.index(name), dtype=np.float32)
            return self.models_["*"], self.members_["*"], np.hstack([X.astype(np.float32, copy=False), code])
        return self.models_[name], self.members_[name], X

    def predict_actions(
        self, X: np.ndarray, actions: Sequence[str], wanted: np.ndarray | None = None, num_threads: int = 0
    ) -> np.ndarray:
        """(rows, len(actions)) probabilities; NaN for unsupported actions and where ``wanted``
        (rows x actions, bool) is false."""
        X = np.asarray(X, dtype=np.float32)
        if self.method == "surrogate" and getattr(self, "prepared_", None):
            return predict_prepared(self, X, actions, wanted, num_threads)
        out = np.full((len(X), len(actions)), np.nan)
        base = None
        value = np.empty((0, 0))
        outcome_sets: list[dict[str, lgb.Booster]] = []  # the surrogate's, with V(o, x) averaged over its bag
        if self.method in ("dr_learner", "surrogate") and any(name in self.supported_ for name in actions):
            asked = np.ones(len(X), dtype=bool) if wanted is None else wanted.any(axis=1)
            if self.method == "dr_learner":
                base = np.full(len(X), np.nan)
                base[asked] = self.models_[BASELINE].predict(X[asked], num_threads=num_threads)
            else:
                value_sets, outcome_sets = bag_sets(self.models_, self.members_)
                value = np.full((len(X), len(self.outcomes_)), np.nan)
                value[asked] = np.mean(
                    [values_by_outcome(b, X[asked], self.outcomes_, num_threads, self._fixed()) for b in value_sets],
                    axis=0,
                )
        for j, name in enumerate(actions):
            if name not in self.supported_:
                continue
            rows = np.arange(len(X)) if wanted is None else np.flatnonzero(wanted[:, j])
            if rows.size and outcome_sets:
                code = self.actions_.index(name)
                usable = [b for b in outcome_sets if (OUTCOMES if OUTCOMES in b else name) in b]
                proba = np.mean([outcome_proba(b, name, X[rows], num_threads, code) for b in usable], axis=0)
                proba = adjusted(proba, X[rows], code, self._adjust() if OUTCOMES in self.models_ else None)
                out[rows, j] = (proba * value[rows][:, : proba.shape[1]]).sum(axis=1)
            elif rows.size:
                model, _, data = self._rows(X[rows], name)  # a copy of the wanted rows only
                estimate = np.asarray(model.predict(data, num_threads=num_threads))
                out[rows, j] = estimate if base is None else odds(base[rows], estimate)
        return out

    def _adjust(self) -> SettleAdjust | None:
        """The surrogate's adjustment of settling at once (None for a model fitted before it)."""
        return getattr(self, "adjust_", None)

    def _fixed(self) -> dict[int, float]:
        """The surrogate's outcome values known without a model (none for a model fitted before them)."""
        return getattr(self, "fixed_values_", {})

    def interval(self, X: np.ndarray, name: str, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
        """Per row, a 95 % interval for the action's probability (:func:`models.effects_explain.interval`)."""
        return interval(self, X, name, z)

    def contributions(self, X: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
        """Per row, each input's contribution to the action's estimate and the inputs' names
        (:func:`models.effects_explain.contributions`)."""
        return contributions(self, X, name)


class LoggingPropensity(BaseEstimator):
    """P(the logging policy takes each action | the features): a multiclass LightGBM model."""

    def __init__(
        self,
        n_estimators: int = 120,
        learning_rate: float = 0.2,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        valid_fraction: float = 0.2,
        max_rows: int = 60_000,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.valid_fraction = valid_fraction
        self.max_rows = max_rows
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: np.ndarray, actions: Sequence[str] | np.ndarray, features: Sequence[str]) -> LoggingPropensity:
        """Fit on ``X`` (rows in time order) and the action taken at each row; returns self."""
        names = sorted({str(a) for a in actions})
        codes = np.searchsorted(np.asarray(names, dtype=object), np.asarray(actions, dtype=object))
        rows = np.arange(len(X))
        if len(rows) > self.max_rows:  # an even sample keeps the time order
            rows = np.sort(np.random.default_rng(self.random_state).choice(rows, self.max_rows, replace=False))
        X, codes = np.asarray(X, dtype=np.float32)[rows], codes[rows]
        self.actions_ = tuple(names)
        self.feature_names_in_ = np.asarray(list(features), dtype=object)
        self.n_features_in_ = len(features)
        params = {
            "objective": "multiclass",
            "num_class": len(names),
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "seed": self.random_state,
            "num_threads": self.n_jobs,
            "verbosity": -1,
            "feature_pre_filter": False,
            "feature_fraction": 0.5,
            "max_bin": 63,
        }
        if len(names) == 1:
            self.model_ = None
            return self
        cut = len(X) - int(len(X) * self.valid_fraction)
        trees = self.n_estimators
        if 0 < cut < len(X):
            train = lgb.Dataset(X[:cut], codes[:cut], free_raw_data=False)
            found = lgb.train(
                {**params, "metric": "multi_logloss"},
                train,
                num_boost_round=self.n_estimators,
                valid_sets=[lgb.Dataset(X[cut:], codes[cut:], reference=train)],
                callbacks=[lgb.early_stopping(20, verbose=False)],
            )
            trees = max(1, found.best_iteration or self.n_estimators)
        self.trees_ = trees
        self.model_ = trees_only(lgb.train(params, lgb.Dataset(X, codes), num_boost_round=trees))
        return self

    def predict_proba(self, X: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """(rows, len(actions_)) probabilities, columns in ``actions_`` order."""
        if self.model_ is None:
            return np.ones((len(X), 1))
        if len(X) == 0:
            return np.zeros((0, len(self.actions_)))
        return np.asarray(self.model_.predict(np.asarray(X, dtype=np.float32), num_threads=num_threads))

    def of(self, X: np.ndarray, actions: Sequence[str]) -> np.ndarray:
        """(rows, len(actions)) probabilities of the named actions (0 for actions never logged)."""
        proba = self.predict_proba(X)
        out = np.zeros((len(X), len(actions)))
        for j, name in enumerate(actions):
            if name in self.actions_:
                out[:, j] = proba[:, self.actions_.index(name)]
        return out
