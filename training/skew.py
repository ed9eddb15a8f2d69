"""Training/serving skew: each feature's coverage and distribution at scoring time against the
training set.

At training, :func:`feature_profile` keeps per feature the share of decisions with a value and
the distribution of the values over up to ten bins (deciles of the training values; the
distinct values when there are few). At scoring, :func:`drift_report` puts the cases scored into
the same bins and gives, per feature, the share present then and now and the population
stability index (PSI = sum over bins, missing included, of (now - then) x ln(now / then)). A
feature absent in training (under 1 % present) and present now (10 % or more), or the reverse,
is flagged: the model never learnt what it means, or learnt from what is gone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINS = 10
ABSENT_BELOW = 0.01
PRESENT_FROM = 0.10
PSI_SHIFT = 0.25  # the usual reading: above this the population has moved
_FLOOR = 1e-4  # share given to an empty bin so that PSI stays finite


def _edges(values: np.ndarray) -> list[float]:
    """Inner bin edges of the present ``values``: distinct values when few, else deciles."""
    distinct = np.unique(values)
    if len(distinct) <= BINS:
        return [float(v) for v in (distinct[:-1] + distinct[1:]) / 2]
    return [float(v) for v in np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))]


def _shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of all rows: missing first, then each bin."""
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(np.asarray(edges), present, side="right"), minlength=len(edges) + 1)
    total = max(len(values), 1)
    return [float((len(values) - len(present)) / total), *[float(c / total) for c in counts]]


def feature_profile(values: np.ndarray, features: list[str], max_rows: int = 500_000, seed: int = 0) -> dict[str, Any]:
    """Per feature: share present, bin edges and shares, from the rows of ``values`` (a float
    matrix, one column per feature; an even sample of ``max_rows`` when larger)."""
    rows = np.arange(len(values))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    profile: dict[str, Any] = {"rows": int(len(values)), "features": {}}
    for j, name in enumerate(features):
        column = np.asarray(values[rows, j], dtype=np.float64)
        present = column[~np.isnan(column)]
        edges = _edges(present) if len(present) else []
        profile["features"][name] = {
            "present": float(len(present) / max(len(column), 1)),
            "edges": edges,
            "shares": _shares(column, edges),
        }
    return profile


def psi(then: list[float], now: list[float]) -> float:
    """Population stability index of two lists of shares over the same bins."""
    a = np.maximum(np.asarray(then), _FLOOR)
    b = np.maximum(np.asarray(now), _FLOOR)
    return float(np.sum((b - a) * np.log(b / a)))


def drift_report(profile: dict[str, Any], frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per feature of ``profile``: ``model, feature, present_training, present_scoring,
    psi, flag`` (flag empty, ``absent in training, present now``, ``present in training, absent
    now`` or ``distribution moved``)."""
    rows = []
    for name, seen in profile["features"].items():
        if name in frame.columns:
            column = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            column = np.full(len(frame), np.nan)
        now = _shares(column, seen["edges"])
        present = 1.0 - now[0] if len(column) else 0.0
        flag = ""
        if seen["present"] < ABSENT_BELOW and present >= PRESENT_FROM:
            flag = "absent in training, present now"
        elif seen["present"] >= PRESENT_FROM and present < ABSENT_BELOW:
            flag = "present in training, absent now"
        value = psi(seen["shares"], now)
        if not flag and value > PSI_SHIFT:
            flag = "distribution moved"
        rows.append(
            {
                "model": model,
                "feature": name,
                "present_training": round(seen["present"], 4),
                "present_scoring": round(present, 4),
                "psi": round(value, 4),
                "flag": flag,
            }
        )
    return pd.DataFrame(rows, columns=["model", "feature", "present_training", "present_scoring", "psi", "flag"])


def presence_warnings(report: pd.DataFrame) -> list[str]:
    """One sentence per model naming the features that appeared or disappeared since training."""
    advice = {
        "absent in training, present now": "the model never learnt what they mean: retrain it on history that "
        "has them (imported with `--historical`)",
        "present in training, absent now": "the model learnt from them and now goes without: check the latest "
        "imports and `concord features build`",
    }
    out = []
    for model, rows in report.groupby("model", sort=False):
        for flag, fix in advice.items():
            names = rows.loc[rows["flag"] == flag, "feature"].tolist()
            if names:
                out.append(
                    f"{model}: {len(names)} feature(s) {flag} ({', '.join(names[:8])}"
                    f"{', ...' if len(names) > 8 else ''}); {fix}"
                )
    return out
