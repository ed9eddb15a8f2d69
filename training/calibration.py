"""Cross-fitting: scores of every decision by a booster that never saw its debtor.

The debtors are split into groups; for each group a booster fitted on the others scores it
(optionally stopping early on it). The scores fit the isotonic calibration map of a booster
fitted on all the rows, and the stopping points give that booster's tree count: every decision
serves both the trees and the calibration, none is held back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression

from models.odds import isotonic
from models.specs import ModelSpec
from training.dataset import TrainingSet
from training.tuning import EARLY_STOPPING, odds_for

PREDICT_ROWS = 200_000  # rows scored at a time: no copy of the whole matrix


@dataclass
class CrossFit:
    """Out-of-debtor raw probabilities of the rows cross-fitted (NaN where a group could not be
    fitted), the calibration map they give, and each group's tree count."""

    raw: np.ndarray
    calibrator: IsotonicRegression | None
    trees: list[int]


def debtor_groups(data: TrainingSet, rows: np.ndarray, groups: int, seed: int = 0) -> np.ndarray:
    """A group number (0 .. groups - 1) for each of ``rows``; all decisions of a debtor share it."""
    codes = data.meta["debtor_key"].astype("category").cat.codes.to_numpy()
    return np.random.default_rng(seed).integers(0, groups, int(codes.max()) + 2)[codes[rows] + 1]


def predict_rows(booster: lgb.Booster, data: TrainingSet, rows: np.ndarray, trees: int | None = None) -> np.ndarray:
    """Raw probabilities of ``rows`` from the booster's first ``trees`` trees (all when None),
    a bounded number of rows at a time."""
    out = np.empty(len(rows))
    for start in range(0, len(rows), PREDICT_ROWS):
        out[start : start + PREDICT_ROWS] = booster.predict(
            data.values[rows[start : start + PREDICT_ROWS]], num_iteration=trees
        )
    return out


def cross_fit(
    spec: ModelSpec,
    data: TrainingSet,
    rows: np.ndarray,
    params: dict[str, Any],
    dataset: lgb.Dataset,
    groups: int,
    trees: int,
    stop_early: bool,
) -> CrossFit:
    """Cross-fit the booster of ``params`` over ``rows`` of ``dataset`` (which covers ``data``):
    at most ``trees`` trees, fewer where ``stop_early`` and the held-out group stops improving."""
    labels = data.labels[rows]
    group = debtor_groups(data, rows, groups)
    raw = np.full(len(rows), np.nan)
    counts = []
    for number in range(groups):
        held, fitted = np.flatnonzero(group == number), np.flatnonzero(group != number)
        positives = int(labels[held].sum())
        if min(positives, len(held) - positives) == 0 or len(np.unique(labels[fitted])) < 2:
            continue  # a group without both outcomes can neither stop nor calibrate anything
        odds = odds_for(spec, params, len(fitted), trees)
        settings = {**odds.booster_params(data.features), "metric": "binary_logloss"}
        # LightGBM takes the indices as an array (its type hint says list; a list of millions costs memory)
        valid = [dataset.subset(cast("list[int]", rows[held]))] if stop_early else []
        callbacks: list[Callable[..., Any]] = [lgb.early_stopping(EARLY_STOPPING, verbose=False)] if stop_early else []
        booster = lgb.train(
            settings,
            dataset.subset(cast("list[int]", rows[fitted])),
            num_boost_round=trees,
            valid_sets=valid,
            callbacks=callbacks,
        )
        best = booster.best_iteration if stop_early and booster.best_iteration else booster.current_iteration()
        counts.append(int(best))
        raw[held] = predict_rows(booster, data, rows[held], best)
    scored = ~np.isnan(raw)
    calibrator = isotonic(raw[scored], labels[scored]) if len(np.unique(labels[scored])) == 2 else None
    return CrossFit(raw, calibrator, counts)
