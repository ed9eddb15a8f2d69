"""Settings chosen by the data: a bounded hyperparameter search on time-ordered validation.

Optuna's TPE sampler (seeded) draws the gradient-boosted model's settings from the model's
:class:`~models.specs.SearchSpace`; each trial is scored by the mean ROC-AUC over the rolling
origins (:mod:`training.evaluation`), its tree count chosen on the mean validation curve
(LightGBM's ``cv`` with early stopping). The first trial is the spec's starting settings, so the
search never ends worse than them. The budget (``CONCORD_TUNING_TRIALS`` trials,
``CONCORD_TUNING_SECONDS`` seconds per model) bounds it; with the same data and a budget of
trials it always returns the same settings.

On a large world the search sees an even sample of the debtors' decisions (at most
``SEARCH_ROWS``): settings found there carry over because the smallest leaf is a share of the
rows (``min_child_share``), not a count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from concord.settings import Settings
from models.odds import CalibratedOdds
from models.specs import ModelSpec
from training.dataset import TrainingSet
from training.origins import Fold, rolling_origins

MAX_TREES = 3000
EARLY_STOPPING = 50  # rounds without a better mean validation AUC
SEARCH_ROWS = 400_000


@dataclass(frozen=True)
class Budget:
    """How much search one model gets: trials, seconds, and the sampler's seed."""

    trials: int = 30
    seconds: float = 600.0
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Budget:
        """The budget configured in the settings (``CONCORD_TUNING_*``)."""
        return cls(trials=settings.tuning_trials, seconds=float(settings.tuning_seconds))


@dataclass
class Tuned:
    """The chosen settings (CalibratedOdds parameters with ``min_child_share``), their tree
    count and mean validation ROC-AUC, and what the search cost."""

    params: dict[str, Any]
    trees: int
    auc: float
    trials: int = 1
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def odds_for(spec: ModelSpec, params: dict[str, Any], rows: int, trees: int = MAX_TREES) -> CalibratedOdds:
    """CalibratedOdds with ``params`` for a fit on ``rows`` rows (the leaf share made a count)."""
    settings = {k: v for k, v in params.items() if k != "min_child_share"}
    if "min_child_share" in params and "min_child_samples" not in params:  # a count given by hand wins
        settings["min_child_samples"] = max(5, int(round(params["min_child_share"] * rows)))
    settings["n_estimators"] = trees
    return CalibratedOdds(monotone={k: v for k, v in spec.monotone.items()} or None, **settings)


def dataset_of(data: TrainingSet, rows: np.ndarray | None = None) -> lgb.Dataset:
    """A LightGBM dataset over the training set (or ``rows`` of it), binned once for every trial."""
    values = data.values if rows is None else data.values[rows]
    labels = data.labels if rows is None else data.labels[rows]
    return lgb.Dataset(
        values,
        labels,
        feature_name=data.features,
        free_raw_data=False,
        params={"feature_pre_filter": False, "verbosity": -1},
    )


def validate(
    spec: ModelSpec,
    params: dict[str, Any],
    dataset: lgb.Dataset,
    folds: list[Fold],
    names: list[str],
    max_trees: int = MAX_TREES,
) -> tuple[float, int]:
    """Mean validation ROC-AUC over the folds at the best tree count, and that count."""
    rows = int(np.mean([len(f.train) for f in folds]))
    odds = odds_for(spec, params, rows)
    found = lgb.cv(
        {**odds.booster_params(names), "metric": "auc"},
        dataset,
        num_boost_round=max_trees,
        folds=[(f.train, f.valid) for f in folds],
        stratified=False,
        shuffle=False,
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )
    curve = np.asarray(found["valid auc-mean"])
    best = int(np.argmax(curve))
    return float(curve[best]), best + 1


def search_sample(data: TrainingSet, limit: int = SEARCH_ROWS, seed: int = 0) -> np.ndarray | None:
    """Rows of an even sample of debtors holding at most ``limit`` decisions (None: all rows)."""
    if len(data) <= limit:
        return None
    codes = data.meta["debtor_key"].astype("category").cat.codes.to_numpy()
    keep = np.random.default_rng(seed).random(int(codes.max()) + 1) < limit / len(data)
    return np.flatnonzero(keep[codes])


def search(
    spec: ModelSpec, data: TrainingSet, horizon: pd.Timedelta, budget: Budget, fixed: dict[str, Any] | None = None
) -> Tuned:
    """Choose the gradient-boosted model's settings on time-ordered validation.

    With ``fixed`` settings (a caller comparing settings by hand) there is no search: those
    settings, over the spec's starting ones, get their tree count from the validation curve
    (at most ``n_estimators`` of them when given)."""
    import optuna

    started = time.perf_counter()
    rows = search_sample(data, seed=budget.seed)
    sample = (
        data
        if rows is None
        else TrainingSet(data.meta.iloc[rows].reset_index(drop=True), data.values[rows], data.features)
    )
    folds = rolling_origins(sample.times, sample.labels, horizon)
    if not folds:  # the sample lost a fold's rare outcome: search on everything
        sample, folds = data, rolling_origins(data.times, data.labels, horizon)
    dataset = dataset_of(sample)
    if fixed is not None:
        params = {**spec.params, **{k: v for k, v in fixed.items() if k != "n_estimators"}}
        auc, trees = validate(spec, params, dataset, folds, data.features, int(fixed.get("n_estimators", MAX_TREES)))
        return Tuned(params, trees, auc, 1, time.perf_counter() - started)

    space = spec.search

    def objective(trial: optuna.Trial) -> float:
        params = {}
        for name in ("learning_rate", "num_leaves", "min_child_share", "colsample_bytree", "subsample", "reg_lambda"):
            low, high = getattr(space, name)
            suggest = trial.suggest_int if isinstance(low, int) else trial.suggest_float
            params[name] = suggest(name, low, high, log=name in space.log)
        auc, trees = validate(spec, params, dataset, folds, data.features)
        trial.set_user_attr("trees", trees)
        return auc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=budget.seed))
    study.enqueue_trial(dict(spec.params))
    study.optimize(objective, n_trials=budget.trials, timeout=budget.seconds)
    best = study.best_trial
    history = [
        {"number": t.number, "auc": t.value, "trees": t.user_attrs.get("trees"), **t.params}
        for t in study.trials
        if t.value is not None
    ]
    return Tuned(
        dict(best.params),
        int(best.user_attrs["trees"]),
        float(best.value or 0.0),
        len(study.trials),
        time.perf_counter() - started,
        history,
    )
