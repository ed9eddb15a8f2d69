"""The logistic-regression baseline trained beside every gradient-boosted model.

A champion must do at least as well on the same time-ordered validation; where the baseline
does better it is the model registered, so it keeps the domain's monotone directions too: the
coefficient of a feature named in ``monotone`` is bounded to that sign (L-BFGS-B), which in a
linear model means the probability never moves the other way.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from models.odds import as_frame

_CHUNK = 200_000  # rows transformed at a time when predicting: bounded memory on millions of rows


class LogisticOdds(ClassifierMixin, BaseEstimator):
    """Probability of a binary event from a linear score: missing values imputed by the median
    (with an indicator column where the training data had any), features standardised, L2
    penalty ``1 / C`` on the coefficients, monotone signs enforced.

    Fitting uses at most ``max_rows`` rows (an even sample, fixed by ``random_state``): a
    linear model of a hundred coefficients gains nothing from millions more, and memory does.
    """

    def __init__(
        self, C: float = 1.0, monotone: Mapping[str, int] | None = None, max_rows: int = 200_000, random_state: int = 0
    ) -> None:
        self.C = C
        self.monotone = monotone
        self.max_rows = max_rows
        self.random_state = random_state

    def fit(self, X: object, y: object) -> LogisticOdds:
        """Fit on the rows (a DataFrame, or an array with ``feature_names_in_`` unset); returns self."""
        frame = as_frame(X)
        target = np.asarray(y)
        self.classes_ = np.unique(target)
        if len(self.classes_) != 2:
            raise ValueError("LogisticOdds needs a binary target with both classes present.")
        self.feature_names_in_ = np.array(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        rows = np.arange(len(frame))
        if len(rows) > self.max_rows:
            rows = np.sort(np.random.default_rng(self.random_state).choice(rows, self.max_rows, replace=False))
        values = frame.iloc[rows].to_numpy(dtype=np.float64, na_value=np.nan)
        labels = (target[rows] == self.classes_[1]).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a feature missing in every row has no median: 0
            self.medians_ = np.nan_to_num(np.nanmedian(values, axis=0))
        self.indicators_ = np.flatnonzero(np.isnan(values).any(axis=0))
        self.means_, self.scales_ = np.zeros(values.shape[1]), np.ones(values.shape[1])
        design = self._design(values)  # imputed, not yet standardised
        del values
        width = len(self.feature_names_in_)
        self.means_ = design[:, :width].mean(axis=0)
        scale = design[:, :width].std(axis=0)
        self.scales_ = np.where(scale > 0, scale, 1.0)
        design[:, :width] -= self.means_
        design[:, :width] /= self.scales_
        self.coef_, self.intercept_ = self._solve(design, labels)
        return self

    def _design(self, values: np.ndarray) -> np.ndarray:
        """Imputed, standardised values and the missing-value indicators, as float64 (built in
        one array, in place: a few hundred thousand rows of it are the baseline's whole memory)."""
        width = values.shape[1]
        design = np.empty((len(values), width + len(self.indicators_)))
        columns = design[:, :width]
        columns[:] = values
        missing = np.isnan(columns)
        design[:, width:] = missing[:, self.indicators_]
        np.copyto(columns, np.broadcast_to(self.medians_, columns.shape), where=missing)
        del missing
        columns -= self.means_
        columns /= self.scales_
        return design

    def _solve(self, design: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
        """Penalised maximum likelihood with the monotone coefficients bounded to their sign."""
        n, width = design.shape
        monotone = self.monotone or {}
        names = list(self.feature_names_in_)
        bounds: list[tuple[float | None, float | None]] = [(None, None)]  # intercept
        for j in range(width):
            direction = int(monotone.get(names[j], 0)) if j < len(names) else 0
            bounds.append((0.0, None) if direction > 0 else (None, 0.0) if direction < 0 else (None, None))
        penalty = 1.0 / (self.C * n)
        signed = 2 * labels - 1

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            score = theta[0] + design @ theta[1:]
            value = -np.mean(log_expit(signed * score)) + 0.5 * penalty * theta[1:] @ theta[1:]
            residual = (expit(score) - labels) / n
            gradient = np.concatenate([[residual.sum()], design.T @ residual + penalty * theta[1:]])
            return float(value), gradient

        start = np.zeros(width + 1)
        rate = np.clip(labels.mean(), 1e-6, 1 - 1e-6)
        start[0] = np.log(rate / (1 - rate))
        found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
        return found.x[1:], float(found.x[0])

    def _columns(self, X: object) -> pd.DataFrame:
        check_is_fitted(self, "coef_")
        frame = as_frame(X, list(self.feature_names_in_))
        return frame[list(self.feature_names_in_)]

    def decision_function(self, X: object) -> np.ndarray:
        """The linear score (log-odds) of each row."""
        frame = self._columns(X)
        out = np.empty(len(frame))
        for start in range(0, len(frame), _CHUNK):
            values = frame.iloc[start : start + _CHUNK].to_numpy(dtype=np.float64, na_value=np.nan)
            out[start : start + _CHUNK] = self.intercept_ + self._design(values) @ self.coef_
        return out

    def predict_proba(self, X: object) -> np.ndarray:
        """Probabilities, shape (n, 2): columns for classes_[0] and classes_[1]."""
        positive = expit(self.decision_function(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: object) -> np.ndarray:
        """The more likely class."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def contributions(self, X: object) -> pd.DataFrame:
        """Per-feature contributions in log-odds plus ``bias``: each feature's coefficient times
        its standardised value, its missing-value indicator folded in; they add up to the score."""
        frame = self._columns(X)
        values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        design = self._design(values)
        width = len(self.feature_names_in_)
        parts = design[:, :width] * self.coef_[:width]
        parts[:, self.indicators_] += design[:, width:] * self.coef_[width:]
        out = pd.DataFrame(parts, columns=list(self.feature_names_in_), index=frame.index)
        out["bias"] = self.intercept_
        return out

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def logistic_baseline(monotone: Mapping[str, int] | None = None, random_state: int = 0) -> LogisticOdds:
    """The baseline as every model trains it."""
    return LogisticOdds(monotone=monotone, random_state=random_state)
