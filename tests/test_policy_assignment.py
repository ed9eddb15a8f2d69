"""Assignment as a supervisor checks it: the solution is as good as the exact optimum (to within
the blocks' approximation), fits are honoured, and every case left over says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from policies.assignment import assign
from policies.config import load_policy

RULES = load_policy().assignment


def exact_optimum(cases: pd.DataFrame, mediators: pd.DataFrame, factors: np.ndarray, limit: np.ndarray) -> float:
    """Total expected recovery of the exact min-cost flow with one arc per case and mediator."""
    n, m = factors.shape
    tail, head = np.nonzero(factors > 0)
    gain = np.round(cases["expected_recovery"].to_numpy()[tail] * factors[tail, head] * 100).astype(np.int64) + 1
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(tail, n + head, np.ones(len(tail), np.int64), -gain)
    flow.add_arcs_with_capacity_and_unit_cost(
        np.arange(n), np.full(n, n + m), np.ones(n, np.int64), np.zeros(n, np.int64)
    )
    flow.add_arcs_with_capacity_and_unit_cost(n + np.arange(m), np.full(m, n + m), limit, np.zeros(m, np.int64))
    flow.set_nodes_supplies(np.arange(n + m + 1), np.concatenate([np.ones(n, np.int64), np.zeros(m, np.int64), [-n]]))
    assert flow.solve() == flow.OPTIMAL
    used = flow.flows(arcs) > 0
    return float((cases["expected_recovery"].to_numpy()[tail[used]] * factors[tail[used], head[used]]).sum())


def test_within_half_a_percent_of_the_exact_optimum() -> None:
    rng = np.random.default_rng(2)
    n, m = 3000, 60
    cases = pd.DataFrame(
        {
            "province": rng.choice(["福建省", "广东省", "北京市"], n),
            "product": rng.choice(["credit_card", "consumer_loan"], n),
            "expected_recovery": rng.lognormal(6, 1.5, n),
        }
    )
    mediators = pd.DataFrame(
        {
            "mediator_id": [f"M{i:02d}" for i in range(m)],
            "capacity": rng.integers(20, 80, m),
            "load": 0,
            "languages": rng.choice(["mandarin", "mandarin;minnan", "mandarin;cantonese"], m),
            "products": rng.choice([None, "credit_card", "consumer_loan"], m),
            "provinces": rng.choice([None, "福建省", "广东省;北京市"], m),
            "performance": rng.uniform(0.7, 1.3, m),
        }
    )
    result = assign(cases, mediators, RULES)
    # The same factors as the solver's, case by case, from the mediators it chose and the reasons' rules.
    factors = np.zeros((n, m))
    for j, person in mediators.iterrows():
        serves = person["provinces"] is None or cases["province"].isin(person["provinces"].split(";"))
        lists = cases["product"] == person["products"]  # listed as a speciality
        speaks = ((cases["province"] == "福建省") & ("minnan" in person["languages"])) | (
            (cases["province"] == "广东省") & ("cantonese" in person["languages"])
        )
        factors[:, j] = np.where(
            serves, person["performance"] * np.where(speaks, 1.10, 1.0) * np.where(lists, 1.05, 1.0), 0.0
        )
    balance = np.ceil(RULES.balance_factor * n * mediators["capacity"] / mediators["capacity"].sum())
    limit = np.minimum(mediators["capacity"], balance).to_numpy(np.int64)
    best = exact_optimum(cases, mediators, factors, limit)
    assert result.expected_recovery.sum() >= 0.995 * best
    assert result.expected_recovery.sum() <= best * (1 + 1e-9)


def test_fits_and_reasons() -> None:
    cases = pd.DataFrame(
        {
            "province": ["福建省", "福建省", "四川省"],
            "product": ["credit_card"] * 3,
            "expected_recovery": [900.0, 100.0, 500.0],
        }
    )
    mediators = pd.DataFrame(
        {
            "mediator_id": ["M1", "M2"],
            "capacity": [1, 5],
            "load": [0, 0],
            "languages": ["mandarin;minnan", "mandarin"],
            "products": [None, None],
            "provinces": ["福建省", "福建省"],
            "performance": [1.0, 1.0],
        }
    )
    result = assign(cases, mediators, RULES)
    assert list(result.mediator_id) == ["M1", "M2", ""]  # the minnan speaker gets the more valuable case
    assert "speaks the language of 福建省" in result.reason[0]
    assert result.expected_recovery[0] == 900.0 * 1.10
    assert result.reason[2] == "unassigned: no mediator serves 四川省"
    full = assign(cases.iloc[:2], mediators.assign(load=[1, 5]), RULES)
    assert list(full.mediator_id) == ["", ""]
    assert full.reason[0].startswith("unassigned: every eligible mediator is at capacity or at the balance limit")
