"""The simulator's truth at a snapshot in its two parts, for diagnosing the surrogate action-effect model.

Every case-action truth of the simulator (``truth_actions.p_settle_90d``) is exactly
``sum over c of q(c | a) W(c)``: the action's first-step outcome classes (settle, contact, promise,
fail, repair, certificate) times what each class is worth afterwards under the logging policy (the
oracle with that class forced at the first step), which does not depend on the action. The surrogate
estimates the same two parts, P(o | a, x) and V(o, x): setting each against its truth says which of
them a wrong ranking comes from (docs/policies.md, "Where the simulator's learned values go wrong").

    python benchmarks/effects_truth_parts.py 20000 11 parts.parquet   # bench_effects' simulator world
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = ("settle", "contact", "promise", "fail", "repair", "cert")  # the oracle's CLASS_AGGREGATE columns


def truth_parts(n_cases: int, seed: int, end: dt.date = dt.date(2026, 6, 30)) -> pd.DataFrame:
    """One row per case open at the default snapshot (``end`` - 90 days) and action the world can take
    there: ``q_<class>`` and ``W_<class>``, ``truth`` (their product summed: ``truth_actions``'
    p_settle_90d; NaN for close and wait), the case's state and hidden traits. Draws the world as
    ``simulate_world(n_cases, seed)`` does, up to its histories."""
    from concord.vocabulary import ACTIONS
    from simulator import records
    from simulator.arrays import epoch_day
    from simulator.calibration import CALIBRATION
    from simulator.histories import simulate_cases
    from simulator.population import case_traits, draw_cases
    from simulator.profiles import DEFAULT_PROFILE, effect_profile
    from simulator.snapshot import SETTLE_DAYS, _action_rows, _window, open_cases
    from simulator.states import CLOSE_ACTION, N_LIVE, WAIT_ACTION

    profile, cal = effect_profile(DEFAULT_PROFILE), CALIBRATION
    rng = np.random.Generator(np.random.PCG64(seed))
    end_day = epoch_day(end)
    pop, cases = draw_cases(int(n_cases), end_day, rng)
    persons = np.flatnonzero(~pop.company_primary)
    records.capacity_snapshots(persons, pop, end_day, rng)  # the same draws as the world's
    records.litigation_snapshots(persons, pop, end_day, rng)
    log = simulate_cases(
        case_traits(pop, np.arange(len(cases))), pop.state0, pop.start, pop.stop, pop.claim, cal, profile, rng
    )
    order = np.argsort(log.case, kind="stable")
    for name in log.__dataclass_fields__:
        setattr(log, name, getattr(log, name)[order])
    snapshot_day = epoch_day(end - dt.timedelta(days=SETTLE_DAYS))
    oc = open_cases(log, pop.stop, snapshot_day)
    acting = np.flatnonzero((oc.next_day >= 0) & (oc.state < N_LIVE))
    rows = _action_rows(pop, oc, cal, profile)
    worth = np.zeros((len(oc.case), len(CLASSES)))
    for c in range(len(CLASSES)):
        first = np.zeros((len(CLASSES), acting.size))
        first[c] = 1.0
        worth[acting, c] = _window(pop, oc, acting, snapshot_day, cal, profile, first_outcomes=first)[1]
    forced = (rows.action != CLOSE_ACTION) & (rows.action != WAIT_ACTION) & np.isin(rows.case, acting)
    traits = case_traits(pop, oc.case[rows.case])
    table = pd.DataFrame(
        {
            "case_id": np.asarray(cases["case_id"].array)[oc.case[rows.case]],
            "action": np.asarray(ACTIONS)[rows.action],
            "state": oc.state[rows.case],
            "truth": np.where(forced, (rows.first * worth[rows.case].T).sum(axis=0), np.nan),
            "reachability": traits.zr,
            "capacity": traits.zc,
            "willingness": traits.zw,
            "assets": traits.assets,
        }
    )
    for c, name in enumerate(CLASSES):
        table[f"q_{name}"], table[f"W_{name}"] = rows.first[c], worth[rows.case, c]
    return table


def truth_class(outcome: str, action: str) -> int:
    """The index in ``CLASSES`` of a ledger outcome of ``action`` (the simulator's labels: a contact
    repair's ``delivered`` is a repair, every other action's a failure)."""
    if outcome in ("~settled", "agreement", "paid", "partial_paid"):
        return 0
    if outcome in ("reached", "refused"):
        return 1
    named = {"promise_to_pay": 2, "certificate_issued": 5}
    if outcome in named:
        return named[outcome]
    return 4 if outcome == "delivered" and action == "contact_repair" else 3


if __name__ == "__main__":
    truth_parts(int(sys.argv[1]), int(sys.argv[2])).to_parquet(sys.argv[3])
