"""The logging policy: the stochastic rule that chose every action in the simulated histories
(``propensity`` is its probability), from observable state only.

Weights per stage and attempt count are in ``docs/simulator.md`` (the logging policy); an
action is drawn with probability w_a / (sum of the weights + w_close).
"""

from __future__ import annotations

import functools

import numpy as np

from simulator.population import Traits
from simulator.states import (
    A0_ACTIONS,
    A1_ACTIONS,
    ACTION_CODE,
    CLOSE_ACTION,
    M1,
    M_ACTIONS,
    W_ACTIONS,
    W_FLAG,
)

# Step-index regimes of the policy: weights change only at these attempt counts.
W_REGIME = np.array([0, 1, 2, 3, 3, 4])  # index min(k, 5)
M_REGIME = np.array([0] * 8 + [1, 1, 2])  # index min(k, 10)
W_FORCED_CLOSE, M_FORCED_CLOSE, A_FORCED_CLOSE = 10, 20, 28


@functools.lru_cache(maxsize=1)
def policy_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised action weights (close excluded).

    W: [large, dead_seen, flag, regime, action]; M: [large, promised, regime, action];
    A0: [action]; A1: [action].
    """
    w = np.zeros((2, 2, 3, 5, len(W_ACTIONS)))
    for large in (0, 1):
        for dead in (0, 1):
            for flag in (0, 1, 2):
                for reg in range(5):
                    row = w[large, dead, flag, reg]
                    if flag > 0:
                        good = flag == 2
                        row[0] = 1.0 if good else 0.5
                        row[1] = 0.5 if good else 0.25
                        row[2] = 0.3 if good else 0.15
                        row[3] = 1.2 if good else 0.4
                    row[4] = 2.0 if flag == 0 else 1.2 if flag == 1 else (0.05 if reg < 2 else 0.5)
                    row[5] = (0.7 if large else 0.35) if reg >= 2 else 0.0
                    row[6] = (0.4 if large else 0.1) if reg >= 3 else 0.0
                    row[7] = 1.0 if (dead and reg >= 1) else 0.0
                    row[8] = 0.3 if reg >= 4 else 0.0
    mw = np.zeros((2, 2, 3, len(M_ACTIONS)))
    for large in (0, 1):
        for promised in (0, 1):
            for reg in range(3):
                row = mw[large, promised, reg]
                row[:5] = (1.5 if promised else 1.0), 0.35, 0.5, (0.7 if large else 0.45), 0.3
                row[5] = 0.25 if reg >= 1 else 0.0
                row[6] = (0.2 if large else 0.05) if reg >= 2 else 0.0
    return w, mw, np.array([0.45, 0.35, 0.4]), np.array([1.0])


def close_weight(stage: str, k: np.ndarray) -> np.ndarray:
    """Weight of ``close`` at attempt count ``k``; ``inf`` where closing is certain."""
    kf = k.astype(float)
    if stage == "W":
        w = np.where(k >= 4, 0.25 * (kf - 3), 0.0)
        return np.where(k >= W_FORCED_CLOSE, np.inf, w)
    if stage == "M":
        w = np.where(k >= 8, 0.2 * (kf - 7), 0.0)
        return np.where(k >= M_FORCED_CLOSE, np.inf, w)
    if stage == "A0":
        return np.where(k >= A_FORCED_CLOSE, np.inf, 0.0)
    w = np.where(k >= 16, 0.3 * (kf - 15), 0.0)
    return np.where(k >= A_FORCED_CLOSE, np.inf, w)


def policy(state: np.ndarray, k: np.ndarray, t: Traits, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Action probabilities (n, A+1; the last column is close) for rows all in one stage group.

    Returns the probabilities and the catalogue indices of the columns.
    """
    w, mw, a0w, a1w = policy_tables()
    n = len(state)
    names: tuple[str, ...]
    if group == "W":
        weights = w[t.large, t.dead_seen, W_FLAG[state], W_REGIME[np.minimum(k, 5)]]
        names, cw = W_ACTIONS, close_weight("W", k)
    elif group == "M":
        weights = mw[t.large, (state == M1).astype(int), M_REGIME[np.minimum(k, 10)]]
        names, cw = M_ACTIONS, close_weight("M", k)
    elif group == "A0":
        weights = np.broadcast_to(a0w, (n, len(a0w)))
        names, cw = A0_ACTIONS, close_weight("A0", k)
    elif group == "A1":
        weights = np.broadcast_to(a1w, (n, len(a1w)))
        names, cw = A1_ACTIONS, close_weight("A1", k)
    else:  # P and C
        return np.ones((n, 1)), np.array([CLOSE_ACTION])
    forced = np.isinf(cw)
    total = weights.sum(axis=1) + np.where(forced, 0.0, cw)
    probs = np.empty((n, weights.shape[1] + 1))
    probs[:, :-1] = np.where(forced[:, None], 0.0, weights / total[:, None])
    probs[:, -1] = np.where(forced, 1.0, cw / np.where(forced, 1.0, total))
    return probs, np.array([ACTION_CODE[a] for a in names] + [CLOSE_ACTION])
