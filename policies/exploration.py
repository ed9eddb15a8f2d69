"""Epsilon-exploration (``policies/exploration.yaml``): which share of recommendations is taken at
random, per creditor, among which actions, and the probability every recommendation was made with.

With share epsilon for a case and ``m`` explorable candidates (eligible, unblocked, not sensitive
unless allowed, not listed under ``never``), the engine recommends its best action with
probability 1 - epsilon and each explorable candidate with probability epsilon / m more; a case
with no explorable candidate is not explored. The draw is a hash of the case id, the decision time
and the policy version: the same facts give the same answer, and across cases the draws are
uniform and independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from policies.catalogue import Catalogue
from policies.schema import Node

_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Exploration:
    """Exploration shares and which actions may be explored."""

    epsilon: float = 0.0
    by_creditor: dict[str, float] = field(default_factory=dict)
    explore_sensitive: bool = False
    never: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.epsilon > 0 or any(v > 0 for v in self.by_creditor.values())

    def epsilons(self, creditors: np.ndarray) -> np.ndarray:
        """Per case, its creditor's share (the default for creditors not named)."""
        out = np.full(len(creditors), self.epsilon)
        for name, share in self.by_creditor.items():
            out[creditors == name] = share
        return out

    def explorable(self, catalogue: Catalogue) -> np.ndarray:
        """Boolean mask over the catalogue: the actions that may be taken at random."""
        return np.array(
            [(self.explore_sensitive or not a.sensitive) and a.name not in self.never for a in catalogue.actions]
        )


def parse_exploration(root: Node, catalogue: Catalogue) -> Exploration:
    """The exploration settings of ``exploration.yaml``."""
    top = root.mapping(
        allowed=("version", "epsilon", "by_creditor", "explore_sensitive", "never"), required=("version", "epsilon")
    )
    by_creditor = {name: node.number(0, 1) for name, node in top["by_creditor"].items()} if "by_creditor" in top else {}
    return Exploration(
        epsilon=top["epsilon"].number(0, 1),
        by_creditor=by_creditor,
        explore_sensitive=top["explore_sensitive"].flag() if "explore_sensitive" in top else False,
        never=top["never"].names(catalogue.names, what="action") if "never" in top else (),
    )


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _MIX
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniforms(case_ids: np.ndarray, decision_ts: np.ndarray, salt: str) -> tuple[np.ndarray, np.ndarray]:
    """Two independent uniforms in [0, 1) per case, reproducible from its id, time and ``salt``."""
    ids = pd.util.hash_array(np.asarray(case_ids, dtype=object).astype(str))
    ts = np.nan_to_num(np.asarray(decision_ts, dtype=np.float64)).astype(np.int64).view(np.uint64)
    seed = pd.util.hash_array(np.array([salt], dtype=object))[0]
    with np.errstate(over="ignore"):
        first = _splitmix(ids ^ _splitmix(ts ^ seed))
        second = _splitmix(first)
    scale = float(2**53)
    return (first >> np.uint64(11)).astype(np.float64) / scale, (second >> np.uint64(11)).astype(np.float64) / scale


def explore(
    chosen: np.ndarray, candidate: np.ndarray, explorable: np.ndarray, epsilon: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply exploration to the greedy choices: (chosen, explored, probabilities (cases, actions)).

    ``probabilities`` is each candidate's chance of being recommended (rows sum to 1 over the
    candidates; a case without candidates keeps its fallback with probability 1)."""
    n, k = candidate.shape
    pool = candidate & explorable[None, :]
    m = pool.sum(axis=1)
    epsilon = np.where(m > 0, epsilon, 0.0)
    probabilities = np.zeros((n, k))
    probabilities[np.arange(n), chosen] = 1.0 - epsilon
    probabilities += np.where(pool, (epsilon / np.maximum(m, 1))[:, None], 0.0)
    explored = u < epsilon
    pick = np.minimum((v * m).astype(np.int64), np.maximum(m - 1, 0))
    order = np.cumsum(pool, axis=1) - 1  # position of each explorable action among the case's pool
    rows = np.flatnonzero(explored)
    hit = pool[rows] & (order[rows] == pick[rows, None])
    out = chosen.copy()
    out[rows] = np.argmax(hit, axis=1)
    return out, explored, probabilities
