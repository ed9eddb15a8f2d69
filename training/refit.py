"""The model that is registered: refitted on every labelled decision up to the as-of.

Evaluation (:mod:`training.evaluation`) fits on the past to measure; the registered model then
learns from all the history it may see. Its trees are fitted on every decision; its tree count
and calibration come from cross-fitting over ``CALIBRATION_FOLDS`` groups of debtors
(:mod:`training.calibration`): the mean point where each group's booster stopped improving on
the group it never saw, and the isotonic map of those out-of-debtor scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from models.baseline import LogisticOdds
from models.odds import CalibratedOdds
from models.specs import ModelSpec
from training.calibration import cross_fit
from training.dataset import TrainingSet
from training.evaluation import fit_baseline
from training.tuning import MAX_TREES, odds_for

CALIBRATION_FOLDS = 3


@dataclass
class Refit:
    """The refitted models and what they were fitted on."""

    lightgbm: CalibratedOdds
    baseline: LogisticOdds
    rows: int
    trees: int
    group_trees: list[int]


def refit(
    spec: ModelSpec, data: TrainingSet, params: dict[str, Any], dataset: lgb.Dataset, trees: int | None = None
) -> Refit:
    """Fit the gradient-boosted model and the baseline on every decision of ``data``
    (``dataset``: the same rows, binned); ``trees`` caps the tree count (a count given by hand)."""
    every = np.arange(len(data))
    crossed = cross_fit(spec, data, every, params, dataset, CALIBRATION_FOLDS, trees or MAX_TREES, stop_early=True)
    count = int(round(np.mean(crossed.trees))) if crossed.trees else (trees or 100)
    odds = odds_for(spec, params, len(data), count)
    booster = lgb.train(odds.booster_params(data.features), dataset, num_boost_round=count)
    model = odds.assemble(booster, crossed.calibrator, data.features)
    return Refit(model, fit_baseline(spec, data, every), len(data), count, crossed.trees)
