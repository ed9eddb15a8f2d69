"""The oracle: exact probabilities that a case is reached (settles) within a window, under the
logging policy (after one forced or skipped step, if asked) and the case's true hidden state.

Behind ``truth_decisions`` and the truth at a snapshot. A dynamic programme over the six live
states; the step gaps do not depend on the state, so the window enters only through the
distribution of a sum of gaps. ``docs/simulator.md`` (the oracle) gives the definitions.
"""

from __future__ import annotations

import functools

import numpy as np

from simulator.calibration import Calibration
from simulator.effects import q_agreed, q_mediation, q_warning
from simulator.policy import M_REGIME, W_REGIME, close_weight, policy_tables
from simulator.population import Population, Traits, case_traits
from simulator.profiles import EffectProfile
from simulator.states import (
    A0,
    A1,
    AGREE,
    CERT,
    CONTACT,
    DAY_SECONDS,
    DAY_START,
    FAIL,
    GAP_MAX,
    GAP_MIN,
    M0,
    M1,
    N_CLASSES,
    PAID,
    PARTIAL,
    PROMISE,
    REPAIR,
    W_FLAG,
    W_GOOD1,
    W_LINE,
)


@functools.lru_cache(maxsize=4)
def _gap_sum_tables(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """pmf[j, s] and cdf[j, s] of the sum of j step gaps (days), j = 0..steps."""
    size = GAP_MAX * steps + 2
    pmf = np.zeros((steps + 1, size))
    pmf[0, 0] = 1.0
    gap = np.zeros(GAP_MAX + 1)
    gap[GAP_MIN:] = 1.0 / (GAP_MAX - GAP_MIN + 1)
    for j in range(1, steps + 1):
        pmf[j] = np.convolve(pmf[j - 1], gap)[:size]
    return pmf, np.cumsum(pmf, axis=1)


CLASS_AGGREGATE = np.zeros((N_CLASSES, 6))  # classes -> [settle, contact, promise, fail, repair, cert]
CLASS_AGGREGATE[[AGREE, PAID, PARTIAL], 0] = 1
CLASS_AGGREGATE[CONTACT, 1] = 1
CLASS_AGGREGATE[PROMISE, 2] = 1
CLASS_AGGREGATE[FAIL, 3] = 1
CLASS_AGGREGATE[REPAIR, 4] = 1
CLASS_AGGREGATE[CERT, 5] = 1
_SET, _CON, _PRO, _FAI, _REP, _CER = range(6)


def decision_probabilities(
    pop: Population,
    case: np.ndarray,
    state: np.ndarray,
    k: np.ndarray,
    days_left: np.ndarray,
    second: np.ndarray,
    cal: Calibration,
    profile: EffectProfile,
    horizons: tuple[int, int] = (14, 90),
) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(reached-type event within horizons[0] days) and P(settled-type within horizons[1]).

    One row per decision point: its case (row of the case pool), its live state and attempt
    count before the step, the days from the step's day to the last day the case can still
    act (life cap or world end) and the step's second of the day. Windows are [t, t + H days)
    in event time, t the decision's own time.
    """
    n = len(state)
    reach_end = np.broadcast_to(np.int64(horizons[0]), n)
    settle_end = np.broadcast_to(np.int64(horizons[1]), n)
    return window_probabilities(pop, case, state, k, days_left, second, reach_end, settle_end, cal, profile)


def window_probabilities(
    pop: Population,
    case: np.ndarray,
    state: np.ndarray,
    k: np.ndarray,
    days_left: np.ndarray,
    second: np.ndarray,
    reach_end: np.ndarray,
    settle_end: np.ndarray,
    cal: Calibration,
    profile: EffectProfile,
    first_outcomes: np.ndarray | None = None,
    skip_first: bool = False,
    block: int = 25_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(reached-type event in the window) and P(settled-type event in the window).

    One row per starting point: case, live state and attempt count k before its first step,
    ``days_left`` = days from the first step's day to the last day the case can act (>= 0),
    ``second`` = the first step's second of the day. A step s days after the first step's day
    falls in the window when s < ``reach_end`` (``settle_end``), or s equals it and its second
    is before ``second``. The logging policy chooses every step, except: ``first_outcomes``
    (6, n), the aggregated outcome-class probabilities (``CLASS_AGGREGATE``) of an action
    forced at the first step; ``skip_first``, nothing happens at the first step and the policy
    resumes at the next one with the same k. Rows are processed in blocks sharing the stage
    and k, so the policy's regime and close weight are scalars within a block.
    """
    n = len(state)
    # one int64 key: stage group, then k, then days_left descending
    key = (state > W_GOOD1).astype(np.int64)
    key += state > M1
    key <<= 24
    key |= k
    key <<= 24
    key |= (1 << 24) - 1 - np.minimum(days_left, (1 << 24) - 1)
    order = np.argsort(key, kind="stable").astype(np.int32)
    key = key[order] >> 24
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    del key
    p_reach, p_settle = np.zeros(n), np.zeros(n)
    for group in np.split(order, bounds):
        for lo in range(0, group.size, block):
            rows = group[lo : lo + block]
            p_reach[rows], p_settle[rows] = _oracle_block(
                case_traits(pop, case[rows]),
                state[rows],
                int(k[rows[0]]),
                days_left[rows].astype(np.int64),
                (second[rows].astype(np.int64) - DAY_START) / DAY_SECONDS,
                (reach_end[rows].astype(np.int64), settle_end[rows].astype(np.int64)),
                cal,
                profile,
                None if first_outcomes is None else first_outcomes[:, rows],
                skip_first,
            )
    return p_reach, p_settle


def _mix(weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sum_a weights[n, r, a] q[n, a, c] as a contiguous (r, c, n) array."""
    return np.ascontiguousarray(np.matmul(weights, q).transpose(1, 2, 0))


def _policy_mixtures(
    t: Traits, state: np.ndarray, cal: Calibration, profile: EffectProfile
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per live state: the policy-weighted outcome mixtures (regime, 6, n) and weight sums (regime, n)."""
    n = len(state)
    w, mw, a0w, a1w = policy_tables()
    mix: dict[str, np.ndarray] = {}
    norm: dict[str, np.ndarray] = {}
    if state[0] <= W_GOOD1:
        wt_own = w[t.large, t.dead_seen, W_FLAG[state]]
        wt_good = w[t.large, t.dead_seen, 2]
        mix["Wo"] = _mix(wt_own, q_warning(t, W_LINE[state], cal, profile) @ CLASS_AGGREGATE)
        mix["Wg"] = _mix(wt_good, q_warning(t, np.ones(n, dtype=np.int64), cal, profile) @ CLASS_AGGREGATE)
        norm["Wo"] = np.ascontiguousarray(wt_own.sum(-1).T)
        norm["Wg"] = np.ascontiguousarray(wt_good.sum(-1).T)
    mt = mw[t.large]
    for m, name in ((0, "M0"), (1, "M1")):
        mix[name] = _mix(mt[:, m], q_mediation(t, np.full(n, m, dtype=bool), cal, profile) @ CLASS_AGGREGATE)
        norm[name] = np.ascontiguousarray(mt[:, m].sum(-1).T)
    mix["A0"] = _mix(np.broadcast_to(a0w, (n, 1, len(a0w))), q_agreed(t, False) @ CLASS_AGGREGATE)
    mix["A1"] = _mix(np.broadcast_to(a1w, (n, 1, len(a1w))), q_agreed(t, True) @ CLASS_AGGREGATE)
    norm["A0"] = np.full((1, n), a0w.sum())
    norm["A1"] = np.full((1, n), a1w.sum())
    return mix, norm


def _oracle_block(
    t: Traits,
    state: np.ndarray,
    k0: int,
    days_left: np.ndarray,
    q_before: np.ndarray,
    ends: tuple[np.ndarray, np.ndarray],
    cal: Calibration,
    profile: EffectProfile,
    first_outcomes: np.ndarray | None,
    skip_first: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The dynamic programme for points with one stage group and one attempt count k0.

    Points are sorted by days_left descending, so the points whose window still holds step j
    are a prefix. Live states: 0 the W state at the decision (if in W), 1 W good+works (after
    a repair), 2 M0, 3 M1, 4 A0, 5 A1. ``q_before`` = P(a later step's second falls before
    the window's opening second).
    """
    n = len(state)
    mix, norm = _policy_mixtures(t, state, cal, profile)
    reach_end, settle_end = ends
    h_reach, h_settle = int(reach_end.max()), int(settle_end.max())
    steps = h_settle // GAP_MIN + 1
    pmf, cdf = _gap_sum_tables(steps)
    names = ("Wo", "Wg", "M0", "M1", "A0", "A1")
    mass_s = np.zeros((6, n))
    if state[0] <= W_GOOD1:
        mass_s[0] = 1.0
    else:
        for position, s in ((2, M0), (3, M1), (4, A0), (5, A1)):
            mass_s[position, state == s] = 1.0
    mass_r = mass_s.copy()
    p_reach, p_settle = np.zeros(n), np.zeros(n)
    neg_left = -days_left  # ascending, for searchsorted
    for j in range(steps + 1):
        # points whose settle window can still hold step j: S_j >= 3j <= min(days_left, H)
        m = int(np.searchsorted(neg_left, -min(GAP_MIN * j, h_settle), side="right"))
        if m == 0:
            break
        if skip_first and j == 0:
            continue  # nothing happens at the first step: the mass stays where it is
        k = k0 + j - int(skip_first)
        forced = j == 0 and first_outcomes is not None
        dl, qb, hs, hr = days_left[:m], q_before[:m], settle_end[:m], reach_end[:m]
        g_settle = cdf[j, np.minimum(hs - 1, dl)] + (dl >= hs) * pmf[j, hs] * qb
        reach_on = GAP_MIN * j <= h_reach
        g_reach = cdf[j, np.minimum(hr - 1, dl)] + (dl >= hr) * pmf[j, hr] * qb
        regime = {
            "Wo": W_REGIME[min(k, 5)],
            "Wg": W_REGIME[min(k, 5)],
            "M0": M_REGIME[min(k, 10)],
            "M1": M_REGIME[min(k, 10)],
            "A0": 0,
            "A1": 0,
        }
        kk = np.array([k])
        close = {
            "Wo": close_weight("W", kk)[0],
            "M0": close_weight("M", kk)[0],
            "A0": close_weight("A0", kk)[0],
            "A1": close_weight("A1", kk)[0],
        }
        close["Wg"], close["M1"] = close["Wo"], close["M0"]
        new_s = np.zeros((6, m))
        new_r = np.zeros((6, m))
        settle_j = np.zeros(m)
        reach_j = np.zeros(m)
        for i, name in enumerate(names):
            if name not in mix or (np.isinf(close[name]) and not forced):
                continue
            live_s = mass_s[i, :m].any()
            live_r = reach_on and mass_r[i, :m].any()
            if not (live_s or live_r):
                continue
            if forced:  # the forced action's own outcomes, whatever the policy would do
                b, inv = first_outcomes[:, :m], 1.0  # type: ignore[index]
            else:
                b = mix[name][regime[name], :, :m]
                inv = 1.0 / (norm[name][regime[name], :m] + close[name])
            if live_s:
                x = mass_s[i, :m] * inv
                settle_j += x * b[_SET]
                _spread(new_s, i, x, b, settle=True)
            if live_r:
                x = mass_r[i, :m] * inv
                reach_j += x * (b[_SET] + b[_CON] + b[_PRO])
                _spread(new_r, i, x, b, settle=False)
        p_settle[:m] += settle_j * g_settle
        p_reach[:m] += reach_j * g_reach
        mass_s, mass_r = new_s, new_r
    return p_reach, p_settle


def _spread(new: np.ndarray, i: int, x: np.ndarray, b: np.ndarray, settle: bool) -> None:
    """Add the non-absorbed outcome mass of live state ``i`` (weights ``x``) to ``new``.

    In the settle chain agreement/paid/partial absorb; in the reach chain every reached-type
    class (settle, contact, promise) absorbs too.
    """
    new[i] += x * b[_FAI]
    if i <= 1:  # W: repair -> W good; contact -> M0; promise -> M1; certificate ends the case
        new[1] += x * b[_REP]
        if settle:
            new[2] += x * b[_CON]
            new[3] += x * b[_PRO]
    elif i == 2 or i == 3:  # M0 / M1
        if settle:
            new[2] += x * b[_CON]
            new[3] += x * b[_PRO]
    elif i == 4:  # A0: certificate -> A1; contact stays
        new[5] += x * b[_CER]
        if settle:
            new[4] += x * b[_CON]
    elif settle:  # A1: contact (refuses to go on paying) -> M0
        new[2] += x * b[_CON]
