"""Out-of-time evaluation over several cut-off dates (rolling origin), with its spread.

Each block of :mod:`training.origins` is scored by the gradient-boosted model and the baseline
fitted before its cut; the figures are pooled over the blocks, and the spread is that of the
blocks' ROC-AUC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.baseline import LogisticOdds, logistic_baseline
from models.metrics import scores_by
from models.odds import CalibratedOdds
from models.specs import ModelSpec
from training.calibration import cross_fit
from training.dataset import TrainingSet
from training.origins import Fold
from training.tuning import EARLY_STOPPING, MAX_TREES, odds_for


@dataclass
class Evaluation:
    """Validation predictions of the gradient-boosted model and the baseline, fold by fold,
    and the models fitted for the last fold (kept to compare versions on the same holdout)."""

    folds: list[Fold]
    lightgbm: list[np.ndarray]
    baseline: list[np.ndarray]
    last_lightgbm: CalibratedOdds
    last_baseline: LogisticOdds
    trees: int  # the gradient-boosted model's tree count on the folds

    def table(self, data: TrainingSet) -> pd.DataFrame:
        """One row per fold: cut, rows and time ranges of both sides, each estimator's ROC-AUC."""
        labels, times = data.labels, data.times
        rows = []
        for fold, p_lgbm, p_base in zip(self.folds, self.lightgbm, self.baseline, strict=True):
            rows.append(
                {
                    "cut": fold.cut,
                    "train_rows": len(fold.train),
                    "train_from": times.iloc[fold.train[0]],
                    "train_to": times.iloc[fold.train[-1]],
                    "valid_rows": len(fold.valid),
                    "valid_from": times.iloc[fold.valid[0]],
                    "valid_to": times.iloc[fold.valid[-1]],
                    "base_rate": float(labels[fold.valid].mean()),
                    "auc_lightgbm": float(roc_auc_score(labels[fold.valid], p_lgbm)),
                    "auc_baseline": float(roc_auc_score(labels[fold.valid], p_base)),
                }
            )
        return pd.DataFrame(rows)

    def pooled(self, data: TrainingSet) -> pd.DataFrame:
        """ROC-AUC, PR-AUC, Brier, ECE and lift of both estimators on every validation row,
        overall and by creditor type (rows: estimator, group)."""
        rows = np.concatenate([fold.valid for fold in self.folds])
        labels = data.labels[rows]
        groups = data.meta["creditor_type"].to_numpy()[rows]
        return pd.concat(
            [
                scores_by(labels, np.concatenate(self.lightgbm), groups).assign(estimator="lightgbm"),
                scores_by(labels, np.concatenate(self.baseline), groups).assign(estimator="baseline"),
            ],
            ignore_index=True,
        )


def fold_boosters(
    params: dict, dataset: lgb.Dataset, folds: list[Fold], max_trees: int
) -> tuple[list[lgb.Booster], int]:
    """One booster per fold, fitted on the fold's training rows, and their tree count: where the
    mean validation ROC-AUC over the folds stopped improving (at most ``max_trees``).

    The folds are fitted one at a time, each stopping early on its own validation rows, and of
    each only the trees and the validation curve are kept: a fold's binned rows and training
    buffers are released before the next (``lgb.cv`` holds every fold's at once). A fold that
    stopped before the others counts in the mean with the last value of its curve."""
    curves, kept = [], []
    for fold in folds:
        record: dict[str, Any] = {}
        # LightGBM takes the indices as an array (its type hint says list; a list of millions costs memory)
        train = dataset.subset(cast("list[int]", fold.train))
        valid = dataset.subset(cast("list[int]", fold.valid))
        booster = lgb.train(
            params,
            train,
            num_boost_round=max_trees,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False), lgb.record_evaluation(record)],
        )
        curves.append(np.asarray(record["valid"]["auc"], dtype=float))
        kept.append(lgb.Booster(model_str=booster.model_to_string(num_iteration=-1)))  # the trees alone
        del booster, train, valid
    trees = mean_curve_best(curves)
    return [lgb.Booster(model_str=booster.model_to_string(num_iteration=trees)) for booster in kept], trees


def mean_curve_best(curves: list[np.ndarray]) -> int:
    """The tree count (1-based) at the best mean of validation curves of unequal length (each
    shorter one carried on at its last value)."""
    length = max(len(curve) for curve in curves)
    padded = np.vstack([np.pad(curve, (0, length - len(curve)), mode="edge") for curve in curves])
    return int(np.argmax(padded.mean(axis=0))) + 1


def evaluate(
    spec: ModelSpec,
    data: TrainingSet,
    folds: list[Fold],
    params: dict[str, Any],
    dataset: lgb.Dataset,
    max_trees: int = MAX_TREES,
) -> Evaluation:
    """Fit the gradient-boosted model (``params``; its tree count chosen on the folds' mean
    validation curve; calibrated by cross-fitting over two groups of the fold's debtors, as the
    registered model is over three) and the baseline on each fold's past, and predict its
    validation rows."""
    odds = odds_for(spec, params, int(np.mean([len(f.train) for f in folds])))
    boosters, trees = fold_boosters({**odds.booster_params(data.features), "metric": "auc"}, dataset, folds, max_trees)
    models = []
    for booster, fold in zip(boosters, folds, strict=True):
        crossed = cross_fit(spec, data, fold.train, params, dataset, 2, trees, stop_early=False)
        models.append(CalibratedOdds(**odds.get_params()).assemble(booster, crossed.calibrator, data.features))
    lightgbm = [model.predict_proba(data.frame_of(fold.valid))[:, 1] for model, fold in zip(models, folds, strict=True)]
    baseline = [fit_baseline(spec, data, fold.train) for fold in folds]
    predictions = [
        model.predict_proba(data.frame_of(fold.valid))[:, 1] for model, fold in zip(baseline, folds, strict=True)
    ]
    return Evaluation(folds, lightgbm, predictions, models[-1], baseline[-1], trees)


def fit_baseline(spec: ModelSpec, data: TrainingSet, rows: np.ndarray) -> LogisticOdds:
    """The logistic baseline fitted on ``rows`` (an even sample of them when there are more than it uses)."""
    model = logistic_baseline(spec.monotone)
    if len(rows) > model.max_rows:
        rows = np.sort(np.random.default_rng(model.random_state).choice(rows, model.max_rows, replace=False))
    return model.fit(data.frame_of(rows), data.labels[rows])
