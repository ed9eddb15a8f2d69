"""Calibrated gradient-boosted odds: the model class behind reachability and settlement.

A LightGBM booster with monotone constraints where the domain is sure, then isotonic
calibration of its raw probabilities. ``fit`` is the self-contained scikit-learn path: trees on
the head of the rows (the caller orders them by time), early stopping and calibration on the
tail. Training (``training.refit``) instead fits the trees on every row and calibrates on
cross-fitted scores, then puts the parts together with :meth:`CalibratedOdds.assemble`.
Explanations come from LightGBM's ``pred_contrib`` (identical to SHAP TreeExplainer values, in
log-odds, far cheaper).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted


def as_frame(X: object, names: list[str] | None = None) -> pd.DataFrame:
    """``X`` as a DataFrame: as it is, or a 2-D array with ``names`` (or ``x0, x1, ...``) as columns."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"Expected 2D input, got an array of shape {array.shape}.")
    columns = names if names is not None and len(names) == array.shape[1] else [f"x{i}" for i in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns)


_TIE_BREAK = 1e-6


def isotonic(raw: np.ndarray, labels: np.ndarray) -> IsotonicRegression:
    """The calibration map from raw probabilities to observed rates."""
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)


class CalibratedOdds(ClassifierMixin, BaseEstimator):
    """Probability that a binary event happens (e.g. reached within 14 days), calibrated.

    Parameters mirror LightGBM's scikit-learn names; ``monotone`` maps feature names to +1
    (never lowers the probability), -1 (never raises it) or 0. In :meth:`fit`,
    ``calibration_fraction`` of the rows (the last ones, in the order given) are held out for
    early stopping and isotonic calibration.
    """

    def __init__(
        self,
        n_estimators: int = 600,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 40,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        monotone: Mapping[str, int] | None = None,
        calibration_fraction: float = 0.2,
        early_stopping_rounds: int = 50,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.monotone = monotone
        self.calibration_fraction = calibration_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs

    def booster_params(self, names: Sequence[str]) -> dict[str, Any]:
        """LightGBM's own parameters for these settings over the features ``names`` (trees
        are counted separately: ``n_estimators``)."""
        monotone = self.monotone or {}
        unknown = set(monotone) - set(names)
        if unknown:
            raise ValueError(f"monotone names features the data lacks: {sorted(unknown)}")
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "monotone_constraints": [int(monotone.get(c, 0)) for c in names],
            "monotone_constraints_method": "advanced",
            "seed": self.random_state,
            "num_threads": self.n_jobs,
            "feature_pre_filter": False,
            "verbosity": -1,
        }

    def fit(self, X: object, y: object) -> CalibratedOdds:
        """Fit the trees on the head of the rows, stop early and calibrate on the tail; returns self."""
        frame = as_frame(X)
        target = np.asarray(y)
        if type_of_target(target) != "binary" and len(np.unique(target)) != 2:
            raise ValueError("CalibratedOdds needs a binary target with both classes present.")
        classes = np.unique(target)
        labels = (target == classes[1]).astype(int)
        names = [str(c) for c in frame.columns]
        held_out = max(int(len(frame) * self.calibration_fraction), 1) if len(frame) > 10 else 0
        cut = len(frame) - held_out
        separate = held_out > 0 and len(np.unique(labels[cut:])) == 2 and len(np.unique(labels[:cut])) == 2
        fit_rows = slice(0, cut) if separate else slice(None)
        cal_rows = slice(cut, None) if separate else slice(None)
        params = self.booster_params(names)
        train = lgb.Dataset(frame.iloc[fit_rows], labels[fit_rows], feature_name=names, params=params)
        callbacks: list[Callable[..., Any]] = []
        valid_sets = []
        if separate:
            valid_sets = [lgb.Dataset(frame.iloc[cal_rows], labels[cal_rows], reference=train)]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            {**params, "metric": "binary_logloss"},
            train,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        if separate and booster.best_iteration > 0:  # keep only the trees early stopping chose
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        raw = np.asarray(booster.predict(frame.iloc[cal_rows]))
        return self.assemble(booster, isotonic(raw, labels[cal_rows]), names, classes)

    def assemble(
        self,
        booster: lgb.Booster,
        calibrator: IsotonicRegression | None,
        names: Sequence[str],
        classes: np.ndarray | None = None,
    ) -> CalibratedOdds:
        """Take a fitted booster over the features ``names`` and a calibration map of its raw
        probabilities (None: the raw probabilities stand); returns self, fitted.

        The model keeps the trees only: a copy of the booster made from its text, so that
        neither its training data nor its training buffers live on with the model."""
        self.booster_ = lgb.Booster(model_str=booster.model_to_string())
        self.calibrator_ = calibrator
        self.classes_ = np.array([0, 1]) if classes is None else np.asarray(classes)
        self.feature_names_in_ = np.array(list(names), dtype=object)
        self.n_features_in_ = len(names)
        return self

    def _columns(self, X: object) -> pd.DataFrame:
        check_is_fitted(self, "booster_")
        frame = as_frame(X, list(self.feature_names_in_))
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but the model was fitted with {self.n_features_in_}.")
        return frame[list(self.feature_names_in_)]

    def raw_probability(self, X: object) -> np.ndarray:
        """The booster's probabilities before calibration."""
        return np.asarray(self.booster_.predict(self._columns(X)))

    def predict_proba(self, X: object) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2): columns for classes_[0] and classes_[1]."""
        raw = self.raw_probability(X)
        if self.calibrator_ is None:
            positive = raw
        else:
            # Isotonic steps are flat: a millionth of the raw score keeps the trees' order within
            # a step (a ranked queue needs it) and moves no probability by more than 1e-6.
            positive = np.clip(self.calibrator_.predict(raw) + _TIE_BREAK * raw, 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: object) -> np.ndarray:
        """The more likely class."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def contributions(self, X: object) -> pd.DataFrame:
        """Per-feature contributions in log-odds (SHAP TreeExplainer values) plus ``bias``."""
        frame = self._columns(X)
        values = self.booster_.predict(frame, pred_contrib=True)
        return pd.DataFrame(values, columns=[*frame.columns, "bias"], index=frame.index)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
