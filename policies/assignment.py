"""Auto-assignment of open cases to mediators (``policies/assignment.yaml``), as a min-cost flow.

Each case ``i`` has an expected recovery ``E_i`` (CNY: settlement odds x recoverable claim). With
mediator ``j`` it becomes ``E_i x f_ij``, where ``f_ij`` is the mediator's settle-rate factor
(their rate shrunk toward the average, bounded) times a bonus when they speak the language of the
case's province and one when they list its product. Fits marked ``require`` (by default the
province: a mediator listing provinces serves only those) exclude mediators.

Every mediator takes at most its remaining capacity and at most ``balance_factor`` times its
capacity-proportional share of the run's cases. The flow: each case supplies one unit, arcs go to
its best candidate mediators (cost: minus the recovery in fen) and to an "unassigned" arc (cost
0), mediators drain into the sink within their limits; OR-Tools' min-cost flow maximises the
total expected recovery. Candidates are the ``candidates_per_case`` best mediators of the case's
(province, product) group, more when the group is large; cases left over while some eligible
mediator still has room are solved again against every eligible mediator. Every case ends
assigned (with its reason) or unassigned (with why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from policies.schema import Node

FIT_MODES = ("require", "prefer", "ignore")


@dataclass(frozen=True)
class AssignmentRules:
    version: str
    candidates_per_case: int
    balance_factor: float
    fit: dict[str, str]  # province, product, language -> require | prefer | ignore
    bonus: dict[str, float]  # product, language -> relative bonus on the expected recovery
    prior_cases: float
    factor_floor: float
    factor_ceiling: float
    province_languages: dict[str, tuple[str, ...]]


def parse_assignment(root: Node) -> AssignmentRules:
    top = root.mapping(allowed=("version", "candidates_per_case", "balance_factor", "fit", "bonus", "performance",
                                "province_languages"),
                       required=("version", "candidates_per_case", "balance_factor", "fit", "bonus", "performance",
                                 "province_languages"))
    fit = {key: node.text(FIT_MODES) for key, node in
           top["fit"].mapping(allowed=("province", "product", "language"),
                              required=("province", "product", "language")).items()}
    bonus = {key: node.number(0, 1) for key, node in
             top["bonus"].mapping(allowed=("product", "language"), required=("product", "language")).items()}
    perf = top["performance"].mapping(allowed=("prior_cases", "floor", "ceiling"),
                                      required=("prior_cases", "floor", "ceiling"))
    floor, ceiling = perf["floor"].number(0, 1), perf["ceiling"].number(1, 10)
    languages = {province: node.names(what="language") for province, node in top["province_languages"].items()}
    return AssignmentRules(version=str(top["version"].value), candidates_per_case=top["candidates_per_case"].whole(1),
                           balance_factor=top["balance_factor"].number(1, 100), fit=fit, bonus=bonus,
                           prior_cases=perf["prior_cases"].number(minimum=0), factor_floor=floor,
                           factor_ceiling=ceiling, province_languages=languages)


def performance_factor(cases_worked: np.ndarray, cases_settled: np.ndarray, rules: AssignmentRules) -> np.ndarray:
    """Each mediator's settle rate relative to the average, shrunk toward 1 by ``prior_cases``."""
    total = cases_worked.sum()
    mean = cases_settled.sum() / total if total > 0 else 0.0
    if mean <= 0:
        return np.ones(len(cases_worked))
    shrunk = (cases_settled + rules.prior_cases * mean) / (cases_worked + rules.prior_cases)
    return np.clip(shrunk / mean, rules.factor_floor, rules.factor_ceiling)


def _split(value: object) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(part.strip() for part in str(value).split(";") if part.strip())


@dataclass(frozen=True)
class AssignmentResult:
    """Per case (input order): mediator id ('' when unassigned), expected recovery with them, why."""

    mediator_id: np.ndarray
    expected_recovery: np.ndarray
    reason: np.ndarray
    limits: pd.DataFrame  # per mediator: mediator_id, capacity_left, balance_limit, assigned


def assign(cases: pd.DataFrame, mediators: pd.DataFrame, rules: AssignmentRules) -> AssignmentResult:
    """Assign ``cases`` (columns ``province``, ``product``, ``expected_recovery`` in CNY) to
    ``mediators`` (``mediator_id``, ``capacity`` = total, ``load`` = open cases held now,
    ``languages``, ``products``, ``provinces`` as lists or ';'-text, ``performance`` factor)."""
    from ortools.graph.python import min_cost_flow

    n, m = len(cases), len(mediators)
    ids = mediators["mediator_id"].astype(str).to_numpy()
    capacity = mediators["capacity"].to_numpy(dtype=np.int64)
    left = np.maximum(capacity - mediators.get("load", pd.Series(0, index=mediators.index)).to_numpy(np.int64), 0)
    total = max(int(capacity.sum()), 1)
    balance = np.ceil(rules.balance_factor * n * capacity / total).astype(np.int64)
    limit = np.minimum(left, balance)
    perf = mediators.get("performance", pd.Series(1.0, index=mediators.index)).to_numpy(np.float64)
    provinces, province_names = pd.factorize(cases["province"].fillna("").astype(str))
    products, product_names = pd.factorize(cases["product"].fillna("").astype(str))
    group_of, keys = pd.factorize(provinces * max(len(product_names), 1) + products)
    groups = [(str(province_names[k // len(product_names)]), str(product_names[k % len(product_names)]))
              for k in keys]
    value = np.nan_to_num(cases["expected_recovery"].to_numpy(np.float64), nan=0.0).clip(min=0)
    fit = [_group_fit(province, product, mediators, perf, rules) for province, product in groups]
    factors = np.stack([f[0] for f in fit]) if fit else np.zeros((0, m))  # (groups, mediators)
    candidates = _candidates(group_of, fit, limit, rules.candidates_per_case)
    chosen = _solve(min_cost_flow, value, factors, group_of, [candidates[g] for g in group_of], limit)
    # Cases left over while an eligible mediator still has room: again, against all of them.
    room = limit - np.bincount(chosen[chosen >= 0], minlength=m)
    has_room = ((factors > 0) & (room > 0)[None, :]).any(axis=1)
    retry = np.flatnonzero((chosen < 0) & has_room[group_of])
    if retry.size:
        everyone = [np.flatnonzero(row > 0) for row in factors]
        chosen[retry] = _solve(min_cost_flow, value[retry], factors, group_of[retry],
                               [everyone[g] for g in group_of[retry]], room)
    return _explain(cases, ids, chosen, value, fit, group_of, groups, perf, limit, left, balance)


def _group_fit(province: str, product: str, mediators: pd.DataFrame, perf: np.ndarray,
               rules: AssignmentRules) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """For a (province, product): each mediator's factor (0 = excluded), language and product
    matches, and why a mediator would be excluded (for the unassigned)."""
    wanted = set(rules.province_languages.get(province, ()))
    speaks = np.array([bool(wanted & set(_split(v))) for v in mediators["languages"]], dtype=bool)
    lists = np.array([product in _split(v) if _split(v) else True for v in mediators["products"]], dtype=bool)
    serves = np.array([province in _split(v) if _split(v) else True for v in mediators["provinces"]], dtype=bool)
    ok = np.ones(len(mediators), dtype=bool)
    needs = []
    for key, match in (("province", serves), ("product", lists), ("language", speaks)):
        if rules.fit[key] == "require" and (key != "language" or wanted):
            ok &= match
            needs.append({"province": f"serves {province or 'an unknown province'}", "product": f"handles {product}",
                          "language": f"speaks {' or '.join(sorted(wanted))}"}[key])
    factor = perf.copy()
    if rules.fit["language"] == "prefer":
        factor *= np.where(speaks, 1 + rules.bonus["language"], 1.0)
    if rules.fit["product"] == "prefer":
        factor *= np.where(lists, 1 + rules.bonus["product"], 1.0)
    return np.where(ok, factor, 0.0), speaks, lists, " and ".join(needs)


def _candidates(group_of: np.ndarray, fit: list, limit: np.ndarray, per_case: int) -> list[np.ndarray]:
    """Per group, its best mediators by factor: ``per_case`` of them, or more, until their room
    covers twice the group's cases."""
    sizes = np.bincount(group_of, minlength=len(fit))
    out = []
    for g, (factor, _, _, _) in enumerate(fit):
        eligible = np.flatnonzero((factor > 0) & (limit > 0))
        ranked = eligible[np.lexsort((eligible, -factor[eligible]))]
        covered = np.searchsorted(np.cumsum(limit[ranked]), 2 * sizes[g]) + 1
        out.append(ranked[:max(per_case, int(covered))])
    return out


def _solve(min_cost_flow: Any, value: np.ndarray, factors: np.ndarray, group_of: np.ndarray,
           per_case: list[np.ndarray], limit: np.ndarray) -> np.ndarray:
    """The min-cost flow over each case's candidate mediators ``per_case``; returns each case's
    mediator index, -1 for unassigned."""
    n, m = len(value), factors.shape[1]
    counts = np.array([len(c) for c in per_case], dtype=np.int64)
    case_of_arc = np.repeat(np.arange(n, dtype=np.int64), counts)
    mediator_of_arc = np.concatenate(per_case).astype(np.int64) if counts.sum() else np.zeros(0, np.int64)
    # Recovery in fen, plus one so that assigning a case worth nothing still beats leaving it.
    gain = np.round(value[case_of_arc] * factors[group_of[case_of_arc], mediator_of_arc] * 100).astype(np.int64) + 1
    sink = n + m
    flow = min_cost_flow.SimpleMinCostFlow()
    case_arcs = flow.add_arcs_with_capacity_and_unit_cost(case_of_arc, n + mediator_of_arc,
                                                          np.ones(len(case_of_arc), np.int64), -gain)
    flow.add_arcs_with_capacity_and_unit_cost(np.arange(n, dtype=np.int64), np.full(n, sink, np.int64),
                                              np.ones(n, np.int64), np.zeros(n, np.int64))
    flow.add_arcs_with_capacity_and_unit_cost(n + np.arange(m, dtype=np.int64), np.full(m, sink, np.int64),
                                              limit.astype(np.int64), np.zeros(m, np.int64))
    flow.set_nodes_supplies(np.arange(n + m + 1, dtype=np.int64),
                            np.concatenate([np.ones(n, np.int64), np.zeros(m, np.int64), [-n]]))
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"the assignment flow did not solve (status {status})")
    used = flow.flows(case_arcs) > 0 if len(case_of_arc) else np.zeros(0, dtype=bool)
    chosen = np.full(n, -1, dtype=np.int64)
    chosen[case_of_arc[used]] = mediator_of_arc[used]
    return chosen


def _explain(cases: pd.DataFrame, ids: np.ndarray, chosen: np.ndarray, value: np.ndarray, fit: list,
             group_of: np.ndarray, groups: list[tuple[str, str]], perf: np.ndarray, limit: np.ndarray,
             left: np.ndarray, balance: np.ndarray) -> AssignmentResult:
    n = len(chosen)
    assigned = chosen >= 0
    factor = np.zeros(n)
    factor[assigned] = [fit[g][0][j] for g, j in zip(group_of[assigned], chosen[assigned], strict=True)]
    reasons = np.empty(n, dtype=object)
    pairs = pd.factorize(group_of.astype(np.int64) * (len(ids) + 1) + chosen + 1)[0]
    for code in np.unique(pairs):
        rows = np.flatnonzero(pairs == code)
        g, j = int(group_of[rows[0]]), int(chosen[rows[0]])
        province, product = groups[g]
        if j < 0:
            if not (fit[g][0] > 0).any():
                reasons[rows] = f"unassigned: no mediator {fit[g][3] or 'is available'}"
            else:
                reasons[rows] = ("unassigned: every eligible mediator is at capacity or at the balance limit "
                                 f"({fit[g][3] or 'any mediator'})")
            continue
        parts = [f"settle-rate factor {perf[j]:.2f}"]
        if fit[g][1][j]:
            parts.append(f"speaks the language of {province}")
        if fit[g][2][j]:
            parts.append(f"handles {product}")
        reasons[rows] = "best expected recovery with room left: " + ", ".join(parts)
    counts = np.bincount(chosen[assigned], minlength=len(ids))
    limits = pd.DataFrame({"mediator_id": ids, "capacity_left": left, "balance_limit": balance, "limit": limit,
                           "assigned": counts})
    mediator_id = np.full(n, "", dtype=object)
    mediator_id[assigned] = ids[chosen[assigned]]
    return AssignmentResult(mediator_id=mediator_id,
                            expected_recovery=np.where(assigned, value * factor, 0.0), reason=reasons,
                            limits=limits)
