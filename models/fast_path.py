"""Scoring a few rows fast: a fitted ``CalibratedOdds`` taken apart into its booster (one thread,
a numpy row) and its isotonic calibration as ``np.interp`` over the fitted thresholds.

The same numbers as :meth:`models.odds.CalibratedOdds.predict_proba` (a test holds them equal),
about 50x faster for one row: the DataFrame path costs milliseconds in pandas and LightGBM's
thread pool (``../shared/stack/NOTES.md``); this one tens of microseconds. One row goes through
LightGBM's single-row C entry point (``LGBM_BoosterPredictForMatSingleRowFast``, which its Python
``Booster.predict`` does not expose, LightGBM issue 6913): ``Booster.predict`` spends about
0.4 ms per call building its predictor, the tree walk itself takes microseconds; a test holds
both equal, value for value, on every case of a world. Any other champion
(the logistic baseline wins sometimes) is scored through its own ``predict_proba`` and
``contributions`` on a one-row DataFrame.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.odds import _TIE_BREAK


class SingleRow:
    """``booster.predict(row, num_threads=1)`` (normal, or ``pred_contrib``) of one float64 row through
    LightGBM's single-row fast C API, prepared once per booster. One call at a time per instance
    (a prepared configuration holds its buffers); the C call itself takes microseconds."""

    NORMAL, CONTRIB = 0, 3  # LightGBM's C_API_PREDICT_NORMAL, C_API_PREDICT_CONTRIB

    def __init__(self, booster: Any, n_features: int) -> None:
        from lightgbm.basic import _LIB, _safe_call

        self._lib, self._check = _LIB, _safe_call
        self.n_features = n_features
        # Booster.predict's own default: best_iteration when early stopping set one, else all trees
        iterations = int(booster.best_iteration)
        self._lock = threading.Lock()
        self._configs: dict[int, ctypes.c_void_p] = {}
        self._out: dict[int, np.ndarray] = {}
        for kind, width in ((self.NORMAL, int(booster.num_model_per_iteration())), (self.CONTRIB, n_features + 1)):
            handle = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    booster._handle,
                    ctypes.c_int(kind),
                    ctypes.c_int(0),
                    ctypes.c_int(iterations),
                    ctypes.c_int(1),
                    ctypes.c_int32(n_features),
                    ctypes.c_char_p(b"num_threads=1"),
                    ctypes.byref(handle),
                )
            )  # data type 1: float64
            self._configs[kind] = handle
            self._out[kind] = np.empty(width, dtype=np.float64)
        self._booster = booster  # the configurations point into it: keep it alive with them
        weakref.finalize(self, _free, _LIB, list(self._configs.values()))

    def predict(self, row: np.ndarray, kind: int) -> np.ndarray:
        """The prediction of one row (shape (1, features)) as ``Booster.predict`` returns it."""
        data = np.ascontiguousarray(row, dtype=np.float64).reshape(-1)
        if data.shape[0] != self.n_features:
            raise ValueError(f"one row of {self.n_features} features expected, got {data.shape[0]} values")
        length = ctypes.c_int64(0)
        with self._lock:
            out = self._out[kind]
            self._check(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._configs[kind],
                    data.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(length),
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
            result = out[: length.value].copy()
        return result.reshape(1, -1) if kind == self.CONTRIB else result


def _free(lib: Any, handles: list[ctypes.c_void_p]) -> None:
    for handle in handles:
        lib.LGBM_FastConfigFree(handle)


class FastOdds:
    """Calibrated probabilities and log-odds contributions of a fitted ``CalibratedOdds`` for
    rows given as float arrays (columns in ``names`` order) or as mappings of feature to value."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.booster = getattr(model, "booster_", None)  # None: not a booster model, the generic path
        self.names: tuple[str, ...] = tuple(str(n) for n in model.feature_names_in_)
        self.single = SingleRow(self.booster, len(self.names)) if self.booster is not None else None
        calibrator = getattr(model, "calibrator_", None)
        if calibrator is None:
            self._x = self._y = None
        else:
            self._x = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
            self._y = np.asarray(calibrator.y_thresholds_, dtype=np.float64)

    def row(self, values: Mapping[str, Any]) -> np.ndarray:
        """One row (1 x features) from a mapping; a missing or None value is NaN."""
        given = [values.get(name) for name in self.names]
        try:  # numbers and None (numpy reads None as NaN): one conversion
            return np.array(given, dtype=np.float64).reshape(1, -1)
        except (TypeError, ValueError):  # some value is not a number: value by value, NaN where it is not
            pass
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
        if self.single is not None and rows.shape[0] == 1:
            return self.single.predict(rows, SingleRow.NORMAL)
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
        if self.single is not None and rows.shape[0] == 1:
            return self.single.predict(rows, SingleRow.CONTRIB)
        return np.asarray(self.booster.predict(rows, pred_contrib=True, num_threads=1), dtype=np.float64)
