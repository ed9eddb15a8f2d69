"""The simulated world: the ``World`` (six contract tables and the ground truth behind them)
and ``simulate_world``, which runs the phases in an order that keeps peak memory low.

Population (``population.py``), provider records (``records.py``), case histories
(``histories.py``), the oracle (``oracle.py``) and the snapshot (``snapshot.py``) do the work;
this module only orders it and assembles ``truth`` and ``truth_decisions``.
``docs/simulator.md`` documents the whole simulator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES
from simulator import records
from simulator.arrays import (
    SHANGHAI_OFFSET,
    categorical,
    days_to_datetime,
    epoch_day,
    frame,
    release_memory,
    unique_dtype,
)
from simulator.calibration import CALIBRATION, Calibration
from simulator.histories import Log, events_frame, simulate_cases
from simulator.oracle import decision_probabilities
from simulator.population import FIRST_START_DAYS, case_traits, draw_cases
from simulator.profiles import DEFAULT_PROFILE, EffectProfile, effect_profile
from simulator.snapshot import SETTLE_DAYS, snapshot_truth
from simulator.states import ACTION_CODE, M1, N_LIVE, OUTCOME_CODE, W_GOOD1

DECISION_SAMPLE_RATE = 0.375  # share of open steps kept in truth_decisions (about 3 per case)


@dataclass
class World:
    """A simulated world: the six contract tables and the ground truth behind them.

    ``truth*`` are for evaluation only (``docs/simulator.md``, the ground truth).
    """

    cases: pd.DataFrame
    contact_checks: pd.DataFrame
    events: pd.DataFrame
    capacity: pd.DataFrame
    litigation: pd.DataFrame
    mediators: pd.DataFrame
    truth: pd.DataFrame
    truth_decisions: pd.DataFrame
    truth_snapshot: pd.DataFrame
    truth_actions: pd.DataFrame


def simulate_world(
    n_cases: int,
    seed: int,
    end: dt.date = dt.date(2026, 6, 30),
    calibration: Calibration = CALIBRATION,
    snapshot: dt.date | None = None,
    effects: str | EffectProfile = DEFAULT_PROFILE,
    record_propensity: bool = True,
) -> World:
    """Simulate ``n_cases`` cases and everything the platform would know about them.

    Deterministic per ``seed`` (numpy PCG64). Amounts are CNY, dates are local dates,
    timestamps naive Asia/Shanghai local time except the truth tables' ``decision_time`` and
    ``snapshot`` (UTC). ``snapshot`` (default ``end`` - 90 days) is the date whose local midnight
    ``truth_snapshot`` and ``truth_actions`` look from; ``effects`` names an effect profile of
    ``effect_profiles.yaml`` (or is one); ``record_propensity=False`` leaves the events'
    ``propensity`` empty, as most platform histories are. Neither option changes the draws.
    The phases run in an order that keeps peak memory low (about 1.3 GB for 10^6 cases).
    """
    if n_cases < 1:
        raise ValueError("n_cases must be at least 1")
    snapshot = end - dt.timedelta(days=SETTLE_DAYS) if snapshot is None else snapshot
    if not end - dt.timedelta(days=FIRST_START_DAYS) < snapshot <= end:
        raise ValueError(
            f"snapshot {snapshot} must fall within the world: after {end - dt.timedelta(days=FIRST_START_DAYS)}"
            f" and not after its end {end}"
        )
    profile = effect_profile(effects) if isinstance(effects, str) else effects
    rng = np.random.Generator(np.random.PCG64(seed))
    end_day = epoch_day(end)
    pop, cases = draw_cases(int(n_cases), end_day, rng)
    case_dtype = unique_dtype(pd.Index(cases["case_id"].array))
    creditor_dtype = cases["creditor"].dtype
    release_memory()
    n = len(cases)
    persons = np.flatnonzero(~pop.company_primary)
    # A debtor with two cases gets snapshots through both; a provider reports one per day.
    capacity = records.one_per_key(records.capacity_snapshots(persons, pop, end_day, rng), ["id_number", "as_of"])
    litigation = records.one_per_key(records.litigation_snapshots(persons, pop, end_day, rng), ["id_number", "as_of"])

    traits = case_traits(pop, np.arange(n))
    release_memory()
    log = simulate_cases(traits, pop.state0, pop.start, pop.stop, pop.claim, calibration, profile, rng)
    del traits
    release_memory()
    order = np.argsort(log.case, kind="stable")
    for f in Log.__dataclass_fields__:  # in place, one column at a time
        setattr(log, f, getattr(log, f)[order])
    del order

    n_med = max(5, n // 150)
    mediators = records.mediators(n_med, rng)
    mediator_of_case = rng.integers(0, n_med, size=n)
    repair_rows = np.flatnonzero((log.action == ACTION_CODE["contact_repair"]) & ~pop.company[log.case])
    repairs = (
        log.case[repair_rows],
        log.day[repair_rows],
        log.second[repair_rows],
        log.outcome[repair_rows] == OUTCOME_CODE["delivered"],
    )
    del repair_rows

    # Each open step is a decision point with a fixed probability: a rule that looks at the
    # future (say "3 steps of each case") would bias the realised outcomes against the oracle.
    live = log.state < N_LIVE
    in_sample = live & (rng.random(live.size) < DECISION_SAMPLE_RATE)
    points = np.flatnonzero(in_sample | (log.k == 0))
    point_case, point_state, point_k = log.case[points], log.state[points], log.k[points]
    point_day, point_second = log.day[points], log.second[points]
    point_sampled = in_sample[points]
    del live, in_sample, points
    reached = np.zeros(n, dtype=bool)
    reached[log.case[np.isin(log.outcome, [OUTCOME_CODE[o] for o in REACHED_OUTCOMES])]] = True
    settled = np.zeros(n, dtype=bool)
    settled[log.case[np.isin(log.outcome, [OUTCOME_CODE[o] for o in SETTLED_OUTCOMES])]] = True
    truth_snapshot, truth_actions = snapshot_truth(
        pop, log, epoch_day(snapshot), calibration, profile, case_dtype, creditor_dtype
    )
    log.state = log.cls = np.empty(0, dtype=np.int8)  # the events table does not need these
    log.k = np.empty(0, dtype=np.int16)
    days_left = (pop.stop[point_case] - point_day).astype(np.int32)
    p_reach, p_settle = decision_probabilities(
        pop, point_case, point_state, point_k, days_left, point_second, calibration, profile
    )
    del days_left
    release_memory()
    contact_checks = records.one_per_key(records.contact_checks(repairs, pop, rng), ["id_number", "checked_at"])
    del repairs
    release_memory()

    sel = point_sampled
    stage_code = np.where(point_state[sel] <= W_GOOD1, 0, np.where(point_state[sel] <= M1, 1, 2))
    truth_decisions = frame(
        {
            "case_id": categorical(point_case[sel], case_dtype),
            "creditor": pd.Categorical.from_codes(pop.creditor[point_case[sel]], dtype=creditor_dtype),
            "decision_time": pd.DatetimeIndex(
                days_to_datetime(point_day[sel], point_second[sel]) - SHANGHAI_OFFSET
            ).tz_localize("UTC"),
            "step": point_k[sel].astype(np.int64),
            "stage": pd.Categorical.from_codes(stage_code, categories=["warning", "mediation", "agreement"]),
            "p_reach_14d": p_reach[sel],
            "p_settle_90d": p_settle[sel],
        }
    )
    del sel, stage_code, point_sampled, point_day, point_second, point_state
    release_memory()
    first = point_k == 0
    p_first = []
    for p in (p_reach, p_settle):
        column = np.zeros(n)
        column[point_case[first]] = p[first]
        p_first.append(column)
    del p_reach, p_settle, point_case, point_k, first
    release_memory()
    d = pop.debtor
    truth = frame(
        {
            "case_id": cases["case_id"].array,
            "creditor": cases["creditor"].array.copy(),
            "creditor_type": pd.Categorical.from_codes(pop.ct, categories=["bank", "consumer_finance"]),
            "reachability": pop.zr[d],
            "capacity": pop.zc[d],
            "willingness": pop.zw[d],
            "has_assets": (pop.has_property | pop.has_vehicle)[d],
            "dead_debt": pop.dead[d],
            "line_works_at_start": pop.line0,
            "start_date": days_to_datetime(pop.start),
            "life_days": pop.life.astype(np.int64),
            "in_scope": pop.in_scope,
            "reached": reached,
            "settled": settled,
            "p_reach_14d": p_first[0],
            "p_settle_90d": p_first[1],
        }
    )
    del reached, settled, p_first, d
    creditor = pop.creditor
    del pop
    release_memory()

    events = events_frame(log, creditor, mediator_of_case, mediators, case_dtype, creditor_dtype, record_propensity)
    del log, mediator_of_case
    release_memory()
    return World(
        cases,
        contact_checks,
        events,
        capacity,
        litigation,
        mediators,
        truth,
        truth_decisions,
        truth_snapshot,
        truth_actions,
    )
