"""Evaluation figures for probability models: discrimination, calibration, lift.

ROC-AUC, PR-AUC, Brier, expected calibration error and top-decile lift, overall and by group."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean prediction| over equal-frequency bins, weighted by size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    error = 0.0
    for chunk in np.array_split(order, min(bins, len(y))):
        if len(chunk):
            error += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return float(error / len(y))


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Positive rate among the 10% highest-scored rows over the overall positive rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0 or y.mean() == 0:
        return float("nan")
    top = np.argsort(-p, kind="stable")[: max(1, len(y) // 10)]
    return float(y[top].mean() / y.mean())


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, expected calibration error, top-decile lift, base rate."""
    y, p = np.asarray(y), np.asarray(p)
    both = len(np.unique(y)) == 2
    return {
        "rows": int(len(y)),
        "base_rate": float(np.mean(y)) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": top_decile_lift(y, p),
    }


def scores_by(y: np.ndarray, p: np.ndarray, groups: pd.Series) -> pd.DataFrame:
    """:func:`scores` overall (group ``all``) and for each group (e.g. creditor type)."""
    rows = [{"group": "all", **scores(y, p)}]
    groups = pd.Series(np.asarray(groups))
    for name in sorted(groups.dropna().unique()):
        mask = (groups == name).to_numpy()
        rows.append({"group": str(name), **scores(np.asarray(y)[mask], np.asarray(p)[mask])})
    return pd.DataFrame(rows)
