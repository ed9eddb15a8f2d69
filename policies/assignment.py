"""Auto-assignment of open cases to mediators (``policies/assignment.yaml``), as a min-cost flow.

Each case ``i`` has an expected recovery ``E_i`` (CNY: settlement odds x recoverable claim). With
mediator ``j`` it becomes ``E_i x f_ij``, where ``f_ij`` is the mediator's settle-rate factor
(their rate shrunk toward the average, bounded) times a bonus when they speak the language of the
case's province and one when they list its product. Fits marked ``require`` (by default the
province: a mediator listing provinces serves only those) exclude mediators.

Every mediator takes at most its remaining capacity and at most ``balance_factor`` times its
capacity-proportional share of the run's cases. Since the recovery is a product (case value x
mediator factor), cases are solved in blocks: each (province, product) group's cases are cut into
``value_tiers`` tiers by expected recovery, and a tier supplies its count of units at its mean
value. Arcs go from each block to every eligible mediator (cost: minus the recovery in fen) and to
an "unassigned" arc (cost 0); mediators drain into the sink within their limits; OR-Tools'
min-cost flow maximises the total. Within a block the most valuable cases take the slots of the
highest factor (the best matching for those quotas), so the only approximation is the tier's
mean value. A case is left unassigned only when no eligible mediator has room left. Every case
ends assigned (with its reason) or unassigned (with why).
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
    value_tiers: int
    balance_factor: float
    fit: dict[str, str]  # province, product, language -> require | prefer | ignore
    bonus: dict[str, float]  # product, language -> relative bonus on the expected recovery
    prior_cases: float
    factor_floor: float
    factor_ceiling: float
    province_languages: dict[str, tuple[str, ...]]


def parse_assignment(root: Node) -> AssignmentRules:
    keys = ("version", "value_tiers", "balance_factor", "fit", "bonus", "performance", "province_languages")
    top = root.mapping(allowed=keys, required=keys)
    fit = {
        key: node.text(FIT_MODES)
        for key, node in top["fit"]
        .mapping(allowed=("province", "product", "language"), required=("province", "product", "language"))
        .items()
    }
    bonus = {
        key: node.number(0, 1)
        for key, node in top["bonus"].mapping(allowed=("product", "language"), required=("product", "language")).items()
    }
    perf = top["performance"].mapping(
        allowed=("prior_cases", "floor", "ceiling"), required=("prior_cases", "floor", "ceiling")
    )
    floor, ceiling = perf["floor"].number(0, 1), perf["ceiling"].number(1, 10)
    languages = {province: node.names(what="language") for province, node in top["province_languages"].items()}
    return AssignmentRules(
        version=str(top["version"].value),
        value_tiers=top["value_tiers"].whole(1),
        balance_factor=top["balance_factor"].number(1, 100),
        fit=fit,
        bonus=bonus,
        prior_cases=perf["prior_cases"].number(minimum=0),
        factor_floor=floor,
        factor_ceiling=ceiling,
        province_languages=languages,
    )


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
    groups = [(str(province_names[k // len(product_names)]), str(product_names[k % len(product_names)])) for k in keys]
    value = np.nan_to_num(cases["expected_recovery"].to_numpy(np.float64), nan=0.0).clip(min=0)
    fit = [_group_fit(province, product, mediators, perf, rules) for province, product in groups]
    factors = np.stack([f[0] for f in fit]) if fit else np.zeros((0, m))  # (groups, mediators)
    tier = _tiers(group_of, value, rules.value_tiers)
    chosen = _solve(min_cost_flow, value, factors, group_of, tier, limit)
    return _explain(cases, ids, chosen, value, fit, group_of, groups, perf, limit, left, balance)


def _group_fit(
    province: str, product: str, mediators: pd.DataFrame, perf: np.ndarray, rules: AssignmentRules
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """For a (province, product): each mediator's factor (0 = excluded), language and product
    matches, and why a mediator would be excluded (for the unassigned)."""
    wanted = set(rules.province_languages.get(province, ()))
    speaks = np.array([bool(wanted & set(_split(v))) for v in mediators["languages"]], dtype=bool)
    lists = np.array([product in _split(v) for v in mediators["products"]], dtype=bool)  # a speciality: bonus
    handles = lists | np.array([not _split(v) for v in mediators["products"]], dtype=bool)  # none listed: any
    serves = np.array([province in _split(v) if _split(v) else True for v in mediators["provinces"]], dtype=bool)
    ok = np.ones(len(mediators), dtype=bool)
    needs = []
    for key, match in (("province", serves), ("product", handles), ("language", speaks)):
        if rules.fit[key] == "require" and (key != "language" or wanted):
            ok &= match
            needs.append(
                {
                    "province": f"serves {province or 'an unknown province'}",
                    "product": f"handles {product}",
                    "language": f"speaks {' or '.join(sorted(wanted))}",
                }[key]
            )
    factor = perf.copy()
    if rules.fit["language"] == "prefer":
        factor *= np.where(speaks, 1 + rules.bonus["language"], 1.0)
    if rules.fit["product"] == "prefer":
        factor *= np.where(lists, 1 + rules.bonus["product"], 1.0)
    return np.where(ok, factor, 0.0), speaks, lists, " and ".join(needs)


def _tiers(group_of: np.ndarray, value: np.ndarray, tiers: int) -> np.ndarray:
    """Each case's value tier within its group: 0 for its most valuable cases, up to ``tiers`` - 1."""
    order = np.lexsort((np.arange(len(value)), -value, group_of))
    sizes = np.bincount(group_of)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if sizes.size else sizes
    rank = np.empty(len(value), dtype=np.int64)
    rank[order] = np.arange(len(value)) - starts[group_of[order]]
    return (rank * tiers // np.maximum(sizes[group_of], 1)).astype(np.int64)


def _solve(
    min_cost_flow: Any,
    value: np.ndarray,
    factors: np.ndarray,
    group_of: np.ndarray,
    tier: np.ndarray,
    limit: np.ndarray,
) -> np.ndarray:
    """The min-cost flow over blocks of cases (a group's value tier, at its mean value), then
    within each block the most valuable cases to the mediators of highest factor; returns each
    case's mediator index, -1 for unassigned."""
    n, m = len(value), factors.shape[1]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    block, block_key = pd.factorize(group_of.astype(np.int64) * (int(tier.max()) + 1) + tier)
    blocks = len(block_key)
    supply = np.bincount(block, minlength=blocks).astype(np.int64)
    mean = np.bincount(block, weights=value, minlength=blocks) / supply
    block_group = np.zeros(blocks, dtype=np.int64)
    block_group[block] = group_of
    tail, head = np.nonzero((factors[block_group] > 0) & (limit > 0)[None, :])
    # Recovery in fen per case, plus one so that assigning a case worth nothing still beats leaving it.
    gain = np.round(mean[tail] * factors[block_group[tail], head] * 100).astype(np.int64) + 1
    sink = blocks + m
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        tail.astype(np.int64), blocks + head.astype(np.int64), supply[tail], -gain
    )
    flow.add_arcs_with_capacity_and_unit_cost(
        np.arange(blocks, dtype=np.int64), np.full(blocks, sink, np.int64), supply, np.zeros(blocks, np.int64)
    )  # left unassigned
    flow.add_arcs_with_capacity_and_unit_cost(
        blocks + np.arange(m, dtype=np.int64), np.full(m, sink, np.int64), limit.astype(np.int64), np.zeros(m, np.int64)
    )
    flow.set_nodes_supplies(np.arange(sink + 1, dtype=np.int64), np.concatenate([supply, np.zeros(m, np.int64), [-n]]))
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"the assignment flow did not solve (status {status})")
    taken = flow.flows(arcs) if len(tail) else np.zeros(0, np.int64)
    used = taken > 0
    tail, head, taken = tail[used], head[used], taken[used]
    # Slots of each block, best factor first; the block's cases, most valuable first, take them in turn.
    slot_order = np.lexsort((head, -factors[block_group[tail], head], tail))
    slots = np.repeat(head[slot_order], taken[slot_order])
    filled = np.bincount(tail, weights=taken, minlength=blocks).astype(np.int64)
    first_slot = np.concatenate([[0], np.cumsum(filled)[:-1]])
    order = np.lexsort((np.arange(n), -value, block))
    position = np.arange(n) - np.concatenate([[0], np.cumsum(supply)[:-1]])[block[order]]
    chosen = np.full(n, -1, dtype=np.int64)
    served = position < filled[block[order]]
    chosen[order[served]] = slots[first_slot[block[order[served]]] + position[served]]
    return chosen


def _explain(
    cases: pd.DataFrame,
    ids: np.ndarray,
    chosen: np.ndarray,
    value: np.ndarray,
    fit: list,
    group_of: np.ndarray,
    groups: list[tuple[str, str]],
    perf: np.ndarray,
    limit: np.ndarray,
    left: np.ndarray,
    balance: np.ndarray,
) -> AssignmentResult:
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
                reasons[rows] = (
                    "unassigned: every eligible mediator is at capacity or at the balance limit "
                    f"({fit[g][3] or 'any mediator'})"
                )
            continue
        parts = [f"settle-rate factor {perf[j]:.2f}"]
        if fit[g][1][j]:
            parts.append(f"speaks the language of {province}")
        if fit[g][2][j]:
            parts.append(f"specialises in {product}")
        reasons[rows] = "best expected recovery with room left: " + ", ".join(parts)
    counts = np.bincount(chosen[assigned], minlength=len(ids))
    limits = pd.DataFrame(
        {"mediator_id": ids, "capacity_left": left, "balance_limit": balance, "limit": limit, "assigned": counts}
    )
    mediator_id = np.full(n, "", dtype=object)
    mediator_id[assigned] = ids[chosen[assigned]]
    return AssignmentResult(
        mediator_id=mediator_id,
        expected_recovery=np.where(assigned, value * factor, 0.0),
        reason=reasons,
        limits=limits,
    )
