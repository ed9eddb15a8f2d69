"""Scoring a few rows fast: a fitted ``CalibratedOdds`` taken apart into its booster (one thread,
a numpy row) and its isotonic calibration as ``np.interp`` over the fitted thresholds.

The same numbers as :meth:`models.odds.CalibratedOdds.predict_proba` (a test holds them equal),
about 50x faster for one row: the DataFrame path costs milliseconds in pandas and LightGBM's
thread pool (``../shared/stack/NOTES.md``); this one tens of microseconds. Any other champion
(the logistic baseline wins sometimes) is scored through its own ``predict_proba`` and
``contributions`` on a one-row DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.odds import _TIE_BREAK


class FastOdds:
    """Calibrated probabilities and log-odds contributions of a fitted ``CalibratedOdds`` for
    rows given as float arrays (columns in ``names`` order) or as mappings of feature to value."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.booster = getattr(model, "booster_", None)  # None: not a booster model, the generic path
        self.names: tuple[str, ...] = tuple(str(n) for n in model.feature_names_in_)
        calibrator = getattr(model, "calibrator_", None)
        if calibrator is None:
            self._x = self._y = None
        else:
            self._x = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
            self._y = np.asarray(calibrator.y_thresholds_, dtype=np.float64)

    def row(self, values: Mapping[str, Any]) -> np.ndarray:
        """One row (1 x features) from a mapping; a missing or None value is NaN."""
        out = np.empty((1, len(self.names)), dtype=np.float64)
        for j, name in enumerate(self.names):
            value = values.get(name)
            try:
                out[0, j] = np.nan if value is None else float(value)
            except (TypeError, ValueError):
                out[0, j] = np.nan
        return out

    def _frame(self, rows: np.ndarray) -> Any:
        import pandas as pd

        return pd.DataFrame(rows, columns=list(self.names))

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The booster's uncalibrated probabilities."""
        assert self.booster is not None
        return np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated probability of the event for each row (``predict_proba(X)[:, 1]``)."""
        if self.booster is None:
            return np.asarray(self.model.predict_proba(self._frame(rows))[:, 1], dtype=np.float64)
        raw = self.raw(rows)
        if self._x is None or self._y is None:
            return raw
        # IsotonicRegression(out_of_bounds="clip").predict is this interpolation between thresholds
        return np.clip(np.interp(raw, self._x, self._y) + _TIE_BREAK * raw, 0.0, 1.0)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions (SHAP values), ``bias`` last: rows x (features + 1)."""
        if self.booster is None:
            return np.asarray(self.model.contributions(self._frame(rows)).to_numpy(), dtype=np.float64)
        return np.asarray(self.booster.predict(rows, pred_contrib=True, num_threads=1), dtype=np.float64)
