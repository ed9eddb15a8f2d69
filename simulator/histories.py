"""Case histories: every case's life simulated step by step (the logging policy chooses, the
effect model answers), the event outcome labels and amounts, and the events table (contract 3).

One event row per step; steps are 3-7 days apart, at a uniform second of the contact hours.
The log also keeps each step's state, attempt count and outcome class for the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from concord.vocabulary import ACTIONS, OUTCOMES
from simulator.arrays import categorical, days_to_datetime, frame, sigmoid
from simulator.calibration import Calibration
from simulator.effects import outcome_probs
from simulator.policy import policy
from simulator.population import Traits
from simulator.profiles import EffectProfile
from simulator.states import (
    A0,
    A1,
    ACTION_CODE,
    AGREE,
    CERT,
    CLOSE,
    CONTACT,
    DAY_SECONDS,
    DAY_START,
    FAIL,
    GAP_MAX,
    GAP_MIN,
    GROUPS,
    M0,
    M1,
    MEDIATOR_ACTIONS,
    NEXT_STATE,
    OUTCOME_CODE,
    PAID,
    PARTIAL,
    PROMISE,
    REPAIR,
    W_GOOD1,
    W_LINE,
    draw,
    group_of,
)

_SIM_CHUNK = 65_536  # rows per outcome-probability batch in the simulation


@dataclass
class Log:
    """Event rows of the simulation, in step order."""

    case: np.ndarray
    day: np.ndarray
    second: np.ndarray
    action: np.ndarray
    outcome: np.ndarray
    amount: np.ndarray
    propensity: np.ndarray
    state: np.ndarray
    k: np.ndarray
    cls: np.ndarray


def simulate_cases(
    t: Traits,
    state0: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    claim: np.ndarray,
    cal: Calibration,
    profile: EffectProfile,
    rng: np.random.Generator,
) -> Log:
    """Run every case's life step by step (vectorised over cases); days are epoch day numbers."""
    n = len(state0)
    state = state0.astype(np.int8).copy()
    k = np.zeros(n, dtype=np.int16)
    day = start.astype(np.int32).copy()
    alive = np.ones(n, dtype=bool)
    agreed = np.zeros(n)
    paid = np.zeros(n)
    fields = list(Log.__dataclass_fields__)
    parts: dict[str, list[np.ndarray]] = {f: [] for f in fields}
    while True:
        alive &= day <= stop
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        st = state[idx]
        kk = k[idx].astype(np.int64)
        action = np.empty(idx.size, dtype=np.int8)
        cls = np.empty(idx.size, dtype=np.int8)
        prop = np.empty(idx.size)
        groups = group_of(st)
        u_act, u_cls = rng.random(idx.size), rng.random(idx.size)
        for g, name in enumerate(GROUPS):
            rows = np.flatnonzero(groups == g)
            if rows.size == 0:
                continue
            tg = t.take(idx[rows])
            probs, names = policy(st[rows], kk[rows], tg, name)
            choice = draw(probs, u_act[rows])
            action[rows] = names[choice]
            prop[rows] = probs[np.arange(rows.size), choice]
            closing = choice == probs.shape[1] - 1
            out_cls = np.full(rows.size, CLOSE, dtype=np.int8)
            open_all = np.flatnonzero(~closing) if name != "PC" else np.empty(0, dtype=np.int64)
            for lo in range(0, open_all.size, _SIM_CHUNK):  # bounded memory: q is (rows, actions, 8)
                open_ = open_all[lo : lo + _SIM_CHUNK]
                q = outcome_probs(st[rows[open_]], tg.take(open_), name, cal, profile)
                out_cls[open_] = draw(q[np.arange(open_.size), choice[open_]], u_cls[rows[open_]])
            cls[rows] = out_cls
        outcome, amount = label_outcomes(idx, st, action, cls, t, claim, agreed, paid, rng)
        second = DAY_START + rng.integers(0, DAY_SECONDS, size=idx.size)
        row: tuple[np.ndarray, ...] = (
            idx.astype(np.int32),
            day[idx].copy(),
            second.astype(np.int32),
            action,
            outcome,
            amount,
            prop,
            st.copy(),
            k[idx].copy(),
            cls,
        )
        for f, value in zip(fields, row, strict=True):
            parts[f].append(value)
        state[idx] = NEXT_STATE[st, cls]
        alive[idx[cls == CLOSE]] = False
        k[idx] += 1
        day[idx] += rng.integers(GAP_MIN, GAP_MAX + 1, size=idx.size).astype(np.int32)
    columns = {}
    for f in fields:  # one column at a time, so the step pieces are freed as we go
        columns[f] = np.concatenate(parts.pop(f))
    return Log(**columns)


def label_outcomes(
    idx: np.ndarray,
    st: np.ndarray,
    action: np.ndarray,
    cls: np.ndarray,
    t: Traits,
    claim: np.ndarray,
    agreed: np.ndarray,
    paid: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Event outcome label and amount (CNY) for each row; updates agreed/paid amounts per case."""
    m = idx.size
    act_code, out_code = ACTION_CODE, OUTCOME_CODE
    out = np.full(m, out_code["failed"], dtype=np.int8)
    u = rng.random(m)
    zw = t.zw[idx]
    act = action.astype(np.int64)
    line = np.where(st <= W_GOOD1, W_LINE[np.minimum(st, 4)], 1)
    fail = cls == FAIL
    phone = np.isin(act, [act_code["sms_warning"], act_code["flash_sms"]])
    out[fail & phone & (line == 1)] = np.where(
        u < 0.9, out_code["delivered"], np.where(u < 0.97, out_code["sent"], out_code["opted_out"])
    )[fail & phone & (line == 1)]
    sel = fail & (act == act_code["similar_case_push"]) & (line == 1)
    out[sel] = out_code["delivered"]
    sel = fail & (act == act_code["voice_call"]) & (line == 1)
    out[sel] = np.where(u < 0.95, out_code["no_answer"], out_code["opted_out"])[sel]
    out[fail & (act == act_code["lawyer_letter"])] = out_code["delivered"]
    out[fail & np.isin(act, [act_code["asset_preservation"], act_code["payment_order"]])] = out_code["order_issued"]
    talk = np.isin(act, [act_code["mediator_call"], act_code["video_mediation"], act_code["online_negotiation"]])
    sel = fail & talk
    in_m = (st == M0) | (st == M1)
    out[sel] = np.where(
        in_m & (u < 0.04),
        out_code["disputed"],
        np.where(in_m & (u > 0.97), out_code["opted_out"], out_code["no_answer"]),
    )[sel]
    sel = fail & (act == act_code["installment_offer"])
    out[sel] = np.where(u < 0.05, out_code["disputed"], out_code["sent"])[sel]
    sel = fail & (act == act_code["file_lawsuit"])
    out[sel] = np.where(u < 0.7, out_code["filed"], out_code["judged"])[sel]
    # contact: reached or refused (after an agreement: reached in A0, refused in A1)
    sel = cls == CONTACT
    refuse = u < sigmoid(-0.5 - 0.8 * zw)
    out[sel] = np.where(
        st == A0, out_code["reached"], np.where((st == A1) | refuse, out_code["refused"], out_code["reached"])
    )[sel]
    for c, name in (
        (PROMISE, "promise_to_pay"),
        (AGREE, "agreement"),
        (PAID, "paid"),
        (PARTIAL, "partial_paid"),
        (REPAIR, "delivered"),
        (CERT, "certificate_issued"),
        (CLOSE, "closed"),
    ):
        out[cls == c] = out_code[name]
    amount = np.full(m, np.nan)
    share = rng.uniform(0.6, 1.0, size=m)
    cases_ = idx
    sel = cls == AGREE
    agreed[cases_[sel]] = np.round(claim[cases_[sel]] * share[sel], 2)
    amount[sel] = agreed[cases_[sel]]
    sel = (cls == PARTIAL) & (agreed[cases_] == 0)
    agreed[cases_[sel]] = np.round(claim[cases_[sel]] * share[sel], 2)
    sel = cls == PARTIAL
    base = np.maximum(agreed[cases_] - paid[cases_], 0.0)
    amount[sel] = np.maximum(np.round(base[sel] * (0.1 + 0.3 * u[sel]), 2), 0.01)
    sel = cls == PAID
    rest = np.where(agreed[cases_] > 0, agreed[cases_] - paid[cases_], claim[cases_] * share)
    amount[sel] = np.maximum(np.round(rest[sel], 2), 0.01)
    pay = (cls == PAID) | (cls == PARTIAL)
    paid[cases_[pay]] += amount[pay]
    return out, amount


def events_frame(
    log: Log,
    creditor: np.ndarray,
    mediator_of_case: np.ndarray,
    mediators: pd.DataFrame,
    case_dtype: pd.CategoricalDtype,
    creditor_dtype: pd.CategoricalDtype,
    record_propensity: bool = True,
) -> pd.DataFrame:
    """Contract table 3 from the simulation log, releasing the log's columns as they are used.

    Without ``record_propensity`` the ``propensity`` column is empty (NaN), as in most platform histories.
    """
    columns: dict[str, object] = {}
    columns["case_id"] = categorical(log.case, case_dtype)
    columns["creditor"] = pd.Categorical.from_codes(creditor[log.case], dtype=creditor_dtype)
    by_mediator = np.isin(log.action, [ACTION_CODE[a] for a in MEDIATOR_ACTIONS])
    actor = np.where(by_mediator, mediator_of_case[log.case] + 1, 0).astype(np.int32)
    del by_mediator
    log.case = np.empty(0, dtype=np.int32)
    columns["at"] = days_to_datetime(log.day, log.second)
    log.day = log.second = np.empty(0, dtype=np.int32)
    columns["action"] = pd.Categorical.from_codes(log.action, categories=list(ACTIONS))
    columns["actor"] = pd.Categorical.from_codes(actor, categories=["system", *mediators["mediator_id"]])
    del actor
    columns["outcome"] = pd.Categorical.from_codes(log.outcome, categories=list(OUTCOMES))
    log.action = log.outcome = log.state = log.cls = np.empty(0, dtype=np.int8)
    log.k = np.empty(0, dtype=np.int16)
    columns["amount"] = log.amount
    columns["propensity"] = log.propensity if record_propensity else np.full(log.propensity.size, np.nan)
    log.amount = log.propensity = np.empty(0)
    return frame(columns)
