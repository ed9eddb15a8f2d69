"""A per-action logistic adjustment of the surrogate's odds of settling at once (``settle_adjust``).

The pooled outcome model ``P(o | a, x)`` (one multiclass LightGBM, the action a feature) shrinks the
action-by-trait interactions of a rare class towards the pooled effect: about 1 % of decisions
settle at once, boosting stops after a few dozen rounds (the frequent classes overfit first, and the
settling class's own validation loss is lowest earlier still), and the trees seldom split on the
action inside a trait for that class. On the foreign world installment offers settle low incomes
more often (true 0.0159 against 0.0095); the pooled model estimated the opposite sign.

The adjustment keeps the trees and adds, per action, a logistic regression of "settled at once" on
the ``k`` features with the strongest evidence of such an interaction (a score test of an
action-specific slope on the trees' residuals, summed over actions), the trees' logit the offset::

    logit P'(settle | a, x) = logit P(settle | a, x) + b_a + c_a . z(x)

``z`` the features' ranks in the history (in [-0.5, 0.5], from 101 stored quantiles), ``b_a`` and
``c_a`` ridge-penalised (``lam``, in decisions: the weights are normalised to a mean of 1 per
action). The settling classes are then scaled to ``P'`` and the others to ``1 - P'``. A linear term
per action needs far fewer events than trees to show an interaction (a slope per action, not a split
found among a hundred features), and with no interaction in the data it stays near 0. With
``knots`` (rank knots t, e.g. -0.25, 0, 0.25) each feature also enters as hinges ``max(0, z - t)``:
a linear spline in its rank, which follows a step (incomes below 4,000 CNY) that a slope only
approximates; the ridge keeps the extra slopes small where the data do not call for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from scipy.optimize import minimize

QUANTILES = 101
SCORE_COLUMNS = 16  # candidate features ranked and scored at a time (a rank table of every row x feature is large)


@dataclass
class SettleAdjust:
    """The fitted adjustment: feature columns, their quantiles, the settling classes and per action
    code the coefficients (intercept first)."""

    columns: list[int]
    quantiles: np.ndarray  # (QUANTILES, len(columns))
    settling: list[int]
    beta: dict[int, np.ndarray] = field(default_factory=dict)
    knots: tuple[float, ...] = ()  # rank knots of the hinges (none: linear; models fitted before them)
    fill: np.ndarray | None = None  # per column the value a NaN reads (its median); None: computed on each call

    def ranks(self, X: np.ndarray) -> np.ndarray:
        """(rows, 1 + k): 1 and each feature's rank in the history, in [-0.5, 0.5]."""
        grid = np.linspace(-0.5, 0.5, QUANTILES)
        fill = getattr(self, "fill", None)  # None also for an adjustment pickled before the field
        fill = np.median(self.quantiles, axis=0) if fill is None else fill
        z = [
            np.interp(np.nan_to_num(X[:, c], nan=float(fill[j])), self.quantiles[:, j], grid)
            for j, c in enumerate(self.columns)
        ]
        return np.column_stack([np.ones(len(X)), *z])

    def design(self, X: np.ndarray) -> np.ndarray:
        """(rows, 1 + k (1 + knots)): :meth:`ranks`, then each feature's hinges at the knots (on the ranks'
        scale: the ridge weighs a change of slope as it weighs the slope)."""
        z = self.ranks(X)
        if not self.knots:
            return z
        return np.column_stack([z, *(np.maximum(z[:, 1:] - t, 0.0) for t in self.knots)])


def rank_knots(count: int) -> tuple[float, ...]:
    """``count`` knots evenly spaced inside the ranks' [-0.5, 0.5] (3: -0.25, 0, 0.25)."""
    return tuple(float(t) for t in np.linspace(-0.5, 0.5, count + 2)[1:-1])


def interaction_scores(
    Z: np.ndarray, y: np.ndarray, s: np.ndarray, weight: np.ndarray, codes: np.ndarray, actions: list[int]
) -> np.ndarray:
    """Per column of ``Z``, the score test of adding an action-specific slope on it to the offset
    model (outcome ``y``, fitted odds ``s``): the sum over actions of (sum w (y - s) z)^2 / (sum w
    s (1 - s) z^2), z centred within the action; about chi-square with one degree per action."""
    total = np.zeros(Z.shape[1])
    for code in actions:
        rows = codes == code
        w, r, v = weight[rows], (y - s)[rows], (s * (1 - s))[rows]
        z = Z[rows] - np.average(Z[rows], axis=0, weights=w)
        total += (z.T @ (w * r)) ** 2 / np.maximum(z.T**2 @ (w * v), 1e-12)
    return total


def ridge_logistic(Z: np.ndarray, y: np.ndarray, weight: np.ndarray, offset: np.ndarray, lam: float) -> np.ndarray:
    """Coefficients of logit P(y) = offset + Z beta, weighted log-loss + lam x |beta|^2."""

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1 / (1 + np.exp(-(offset + Z @ beta)))
        value = -np.sum(weight * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))) + lam * beta @ beta
        return float(value), -Z.T @ (weight * (y - p)) + 2 * lam * beta

    return np.asarray(minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B").x)


def fit_settle_adjust(
    booster: lgb.Booster,
    X: np.ndarray,
    codes: np.ndarray,
    o: np.ndarray,
    weight: np.ndarray,
    settling: list[int],
    actions: list[int],
    k: int,
    lam: float,
    knots: int = 0,
) -> SettleAdjust:
    """The adjustment of the pooled outcome ``booster`` (inputs ``X`` and the action code last) on
    the decisions of ``actions`` (codes), ``o`` their outcome classes: on the ``k`` features whose
    action-specific slopes the residuals of settling at once call for most
    (:func:`interaction_scores`), each also with hinges at ``knots`` rank knots (:func:`rank_knots`)."""
    keep = np.isin(codes, actions)
    Xk, w, c = X[keep], weight[keep], codes[keep]
    proba = np.asarray(booster.predict(np.column_stack([Xk, c.astype(np.float32)]))).reshape(len(Xk), -1)
    s = np.clip(proba[:, settling].sum(axis=1), 1e-6, 1 - 1e-6)
    offset, y = np.log(s / (1 - s)), np.isin(o[keep], settling).astype(np.float64)
    candidates = [j for j in range(X.shape[1]) if np.isfinite(Xk[:, j]).sum() > 1]
    grid = np.nanquantile(Xk[:, candidates], np.linspace(0, 1, QUANTILES), axis=0).reshape(QUANTILES, -1)
    scores = np.concatenate(
        [  # every candidate, SCORE_COLUMNS at a time
            interaction_scores(
                SettleAdjust(candidates[i : i + SCORE_COLUMNS], grid[:, i : i + SCORE_COLUMNS], settling).ranks(Xk)[
                    :, 1:
                ],
                y,
                s,
                w,
                c,
                actions,
            )
            for i in range(0, len(candidates), SCORE_COLUMNS)
        ]
    )
    best = np.argsort(-scores)[:k]
    adjust = SettleAdjust(
        [candidates[j] for j in best],
        grid[:, best],
        settling,
        knots=rank_knots(knots),
        fill=np.median(grid[:, best], axis=0),
    )
    Z = adjust.design(Xk)
    for code in actions:
        rows = c == code
        if y[rows].sum() > 0:
            adjust.beta[code] = ridge_logistic(Z[rows], y[rows], w[rows] / w[rows].mean(), offset[rows], lam)
    return adjust


def adjusted(proba: np.ndarray, X: np.ndarray, code: int, adjust: SettleAdjust | None) -> np.ndarray:
    """``proba`` (rows, classes) of action ``code`` with its settling classes scaled to the adjusted
    odds and the others to the rest."""
    if adjust is None or code not in adjust.beta:
        return proba
    s = np.clip(proba[:, adjust.settling].sum(axis=1), 1e-9, 1 - 1e-9)
    target = 1 / (1 + np.exp(-(np.log(s / (1 - s)) + adjust.design(X) @ adjust.beta[code])))
    out = proba * ((1 - target) / (1 - s))[:, None]
    out[:, adjust.settling] = proba[:, adjust.settling] * (target / s)[:, None]
    return out
