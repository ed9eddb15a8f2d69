"""Calibrated gradient-boosted odds: the model class behind reachability and settlement.

A LightGBM classifier (scikit-learn API) with monotone constraints where the domain is sure,
then isotonic calibration on a held-out tail of the training rows (the caller orders rows by
time, so the tail is the most recent). Explanations come from LightGBM's ``pred_contrib``
(identical to SHAP TreeExplainer values, in log-odds, far cheaper).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted


def _frame(X: object, names: list[str] | None = None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"Expected 2D input, got an array of shape {array.shape}.")
    columns = names if names is not None and len(names) == array.shape[1] else [f"x{i}" for i in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns)


_TIE_BREAK = 1e-6


class CalibratedOdds(ClassifierMixin, BaseEstimator):
    """Probability that a binary event happens (e.g. reached within 14 days), calibrated.

    Parameters mirror LightGBM's; ``monotone`` maps feature names to +1 (never lowers the
    probability), -1 (never raises it) or 0. ``calibration_fraction`` of the rows (the last
    ones, in the order given) are held out for early stopping and isotonic calibration.
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

    def fit(self, X: object, y: object) -> CalibratedOdds:
        """Fit the trees on the head of the rows, calibrate on the tail; returns self."""
        frame = _frame(X)
        target = np.asarray(y)
        if type_of_target(target) != "binary" and len(np.unique(target)) != 2:
            raise ValueError("CalibratedOdds needs a binary target with both classes present.")
        self.classes_ = np.unique(target)
        labels = (target == self.classes_[1]).astype(int)
        self.feature_names_in_ = np.array(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        held_out = max(int(len(frame) * self.calibration_fraction), 1) if len(frame) > 10 else 0
        cut = len(frame) - held_out
        fit_x, fit_y = frame.iloc[:cut], labels[:cut]
        cal_x, cal_y = frame.iloc[cut:], labels[cut:]
        if held_out == 0 or len(np.unique(cal_y)) < 2 or len(np.unique(fit_y)) < 2:
            fit_x, fit_y, cal_x, cal_y = frame, labels, frame, labels
        monotone = self.monotone or {}
        unknown = set(monotone) - set(frame.columns)
        if unknown:
            raise ValueError(f"monotone names features the data lacks: {sorted(unknown)}")
        self.booster_ = lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            monotone_constraints=[int(monotone.get(c, 0)) for c in frame.columns],
            monotone_constraints_method="advanced",
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        )
        callbacks: list[Callable[..., Any]] = []
        if cal_x is not frame:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_.fit(fit_x, fit_y, eval_X=(cal_x,), eval_y=(cal_y,), callbacks=callbacks)
        raw = np.asarray(self.booster_.predict_proba(cal_x))[:, 1]
        self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, cal_y)
        return self

    def _columns(self, X: object) -> pd.DataFrame:
        check_is_fitted(self, "booster_")
        frame = _frame(X, list(self.feature_names_in_))
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but the model was fitted with {self.n_features_in_}.")
        return frame[list(self.feature_names_in_)]

    def predict_proba(self, X: object) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2): columns for classes_[0] and classes_[1]."""
        raw = np.asarray(self.booster_.predict_proba(self._columns(X)))[:, 1]
        # Isotonic steps are flat: a millionth of the raw score keeps the trees' order within a
        # step (a ranked queue needs it) and moves no probability by more than 1e-6.
        positive = np.clip(self.calibrator_.predict(raw) + _TIE_BREAK * raw, 0.0, 1.0)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: object) -> np.ndarray:
        """The more likely class."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def contributions(self, X: object) -> pd.DataFrame:
        """Per-feature contributions in log-odds (SHAP TreeExplainer values) plus ``bias``."""
        frame = self._columns(X)
        values = self.booster_.booster_.predict(frame, pred_contrib=True)
        return pd.DataFrame(values, columns=[*frame.columns, "bias"], index=frame.index)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
