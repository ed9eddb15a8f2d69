"""The truth at a snapshot: the cases still open at the snapshot moment, their exact chances
under the logging policy (``truth_snapshot``) and under each action the world can take at
their next step (``truth_actions``). Evaluation only; the product never reads them.

The snapshot moment is 00:00:00 Asia/Shanghai of the snapshot date; the windows are
[snapshot, snapshot + 14 / 90 days). ``docs/simulator.md`` (the truth at a snapshot) defines
every column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from concord.vocabulary import ACTIONS
from simulator.arrays import SHANGHAI_OFFSET, categorical, days_to_datetime, frame
from simulator.calibration import Calibration
from simulator.effects import PHONE_CHANNELS, outcome_probs
from simulator.histories import Log
from simulator.oracle import CLASS_AGGREGATE, window_probabilities
from simulator.policy import policy
from simulator.population import Population, case_traits
from simulator.profiles import EffectProfile
from simulator.states import (
    CLOSE,
    CLOSE_ACTION,
    DAY_START,
    GROUPS,
    N_LIVE,
    NEXT_STATE,
    ST_PAID,
    STAGE_ACTIONS,
    W_FLAG,
    WAIT_ACTION,
    group_of,
)

REACH_DAYS, SETTLE_DAYS = 14, 90  # the windows of p_reach_14d and p_settle_90d
STAGES = ("warning", "mediation", "agreement", "paid", "written_off")  # by group W, M, A0/A1, P, C


@dataclass
class OpenCases:
    """The cases open at the snapshot and where each one stands."""

    case: np.ndarray  # row in the case pool
    state: np.ndarray  # state after the last step before the snapshot
    k: np.ndarray  # actions taken before the snapshot
    next_day: np.ndarray  # epoch day of the first step on or after the snapshot day; -1: none (life over)


def open_cases(log: Log, stop: np.ndarray, snapshot_day: int) -> OpenCases:
    """Cases that started before the snapshot day, did not close before it, and whose life and
    world had not ended (last day to act >= snapshot day). ``log`` is sorted by case, then step."""
    before = log.day < snapshot_day
    next_same = np.zeros(before.size, dtype=bool)
    next_same[:-1] = log.case[1:] == log.case[:-1]
    next_before = np.zeros(before.size, dtype=bool)
    next_before[:-1] = before[1:]
    rows = np.flatnonzero(before & ~(next_same & next_before))  # each case's last step before the snapshot
    rows = rows[(log.cls[rows] != CLOSE) & (stop[log.case[rows]] >= snapshot_day)]
    following = np.minimum(rows + 1, max(before.size - 1, 0))
    return OpenCases(
        case=log.case[rows].astype(np.int64),
        state=NEXT_STATE[log.state[rows], log.cls[rows]],
        k=log.k[rows].astype(np.int64) + 1,
        next_day=np.where(next_same[rows], log.day[following], -1).astype(np.int64),
    )


def snapshot_truth(
    pop: Population,
    log: Log,
    snapshot_day: int,
    cal: Calibration,
    profile: EffectProfile,
    case_dtype: pd.CategoricalDtype,
    creditor_dtype: pd.CategoricalDtype,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``truth_snapshot`` (one row per open case) and ``truth_actions`` (one row per open case and
    action the world can take in its state), both in case-pool order."""
    oc = open_cases(log, pop.stop, snapshot_day)
    n = oc.case.size
    acting = np.flatnonzero((oc.next_day >= 0) & (oc.state < N_LIVE))  # P and C can only close
    p_reach, p_settle = np.zeros(n), np.zeros(n)
    p_reach[acting], p_settle[acting] = _window(pop, oc, acting, snapshot_day, cal, profile)

    rows = _action_rows(pop, oc, cal, profile)
    a_reach, a_settle = np.zeros(rows.case.size), np.zeros(rows.case.size)
    can_act = np.isin(rows.case, acting)
    forced = np.flatnonzero(can_act & (rows.action != CLOSE_ACTION) & (rows.action != WAIT_ACTION))
    a_reach[forced], a_settle[forced] = _window(
        pop, oc, rows.case[forced], snapshot_day, cal, profile, first_outcomes=rows.first[:, forced]
    )
    waiting = np.flatnonzero(can_act & (rows.action == WAIT_ACTION))
    a_reach[waiting], a_settle[waiting] = _window(pop, oc, rows.case[waiting], snapshot_day, cal, profile, skip=True)

    moment = days_to_datetime(np.array([snapshot_day]))[0] - SHANGHAI_OFFSET
    group = group_of(oc.state)
    stage = np.select([group == 0, group == 1, group <= 3, oc.state == ST_PAID], [0, 1, 2, 3], 4)
    truth_snapshot = frame(
        {
            "case_id": categorical(oc.case, case_dtype),
            "creditor": pd.Categorical.from_codes(pop.creditor[oc.case], dtype=creditor_dtype),
            "snapshot": _utc(moment, n),
            "step": oc.k,
            "stage": pd.Categorical.from_codes(stage, categories=list(STAGES)),
            "p_reach_14d": p_reach,
            "p_settle_90d": p_settle,
        }
    )
    case = oc.case[rows.case]
    truth_actions = frame(
        {
            "case_id": categorical(case, case_dtype),
            "creditor": pd.Categorical.from_codes(pop.creditor[case], dtype=creditor_dtype),
            "snapshot": _utc(moment, case.size),
            "action": pd.Categorical.from_codes(rows.action, categories=list(ACTIONS)),
            "logging_probability": rows.logging,
            "p_reach_14d": a_reach,
            "p_settle_90d": a_settle,
        }
    )
    return truth_snapshot, truth_actions


@dataclass
class _ActionRows:
    """One row per open case and allowed action, in case order, then the stage's action order."""

    case: np.ndarray  # position among the open cases
    action: np.ndarray  # catalogue code (close and wait included)
    logging: np.ndarray  # the logging policy's probability of the action at the next step
    first: np.ndarray  # (6, rows) aggregated outcome classes of the action (zeros for close, wait)


def _action_rows(pop: Population, oc: OpenCases, cal: Calibration, profile: EffectProfile) -> _ActionRows:
    """The actions the world can take in each open case's state, with their first-step outcomes."""
    traits = case_traits(pop, oc.case)
    dead = pop.dead[pop.debtor[oc.case]]
    group = group_of(oc.state)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for g, name in enumerate(GROUPS):
        cases = np.flatnonzero(group == g)
        if cases.size == 0:
            continue
        actions = STAGE_ACTIONS[name]
        state, t = oc.state[cases], traits.take(cases)
        allowed = np.ones((cases.size, len(actions) + 2), dtype=bool)  # + close, wait
        if name == "W":  # no number on file: nothing to send; the certificate needs dead debt (终本)
            for j, candidate in enumerate(actions):
                if candidate in PHONE_CHANNELS:
                    allowed[:, j] = W_FLAG[state] > 0
            allowed[:, actions.index("pre_check_write_off")] = dead[cases]
        probs, codes = policy(state, oc.k[cases], t, name)  # columns: the stage's actions, close
        logging = np.zeros(allowed.shape)
        logging[:, : probs.shape[1]] = probs
        row, column = np.nonzero(allowed)
        first = np.zeros((CLASS_AGGREGATE.shape[1], row.size))
        if actions:
            q = outcome_probs(state, t, name, cal, profile) @ CLASS_AGGREGATE
            stage_action = column < len(actions)
            first[:, stage_action] = q[row[stage_action], column[stage_action]].T
        catalogue = np.concatenate([codes, [WAIT_ACTION]])
        parts.append((cases[row], column, catalogue[column], logging[row, column], first))
    if not parts:
        return _ActionRows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((6, 0)))
    case, column, action, logging_p = (np.concatenate([part[i] for part in parts]) for i in range(4))
    first = np.concatenate([part[4] for part in parts], axis=1)
    order = np.lexsort((column, case))
    return _ActionRows(case[order], action[order], logging_p[order], first[:, order])


def _window(
    pop: Population,
    oc: OpenCases,
    positions: np.ndarray,
    snapshot_day: int,
    cal: Calibration,
    profile: EffectProfile,
    first_outcomes: np.ndarray | None = None,
    skip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Oracle probabilities of the open cases ``positions`` for the windows after the snapshot."""
    case, next_day = oc.case[positions], oc.next_day[positions]
    return window_probabilities(
        pop,
        case,
        oc.state[positions],
        oc.k[positions],
        pop.stop[case] - next_day,
        # the windows open at midnight, so no step on a window's end day counts (q_before = 0)
        np.broadcast_to(np.int64(DAY_START), positions.size),
        snapshot_day + REACH_DAYS - next_day,
        snapshot_day + SETTLE_DAYS - next_day,
        cal,
        profile,
        first_outcomes,
        skip,
    )


def _utc(moment: np.datetime64, n: int) -> pd.DatetimeIndex:
    """``n`` copies of a naive UTC moment as a tz-aware column."""
    return pd.DatetimeIndex(np.full(n, moment, dtype="datetime64[s]")).tz_localize("UTC")
