"""What each action is worth for a case: the ``ActionValue`` interface and its prior-based estimator.

Expected value of taking action ``a`` now, in CNY::

    value(a) = P(settle within 90 days | a now, current practice after) x recoverable claim - cost(a)

``ActionValue`` is the one interface the engine calls (case facts in, an estimate per action out);
the learned action-effect model of issue 15 implements it too, so callers do not change.
:class:`PriorValue` starts from the settlement model's odds (``p_settle``: 90 days under current
practice) and moves them by the documented prior effect of each action (``policies/effects.yaml``):
a shift in log-odds, plus modifiers that scale with named facts (an asset freeze helps more when
the debtor owns property), and a penalty for phone actions on a line known to be dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from policies.catalogue import Catalogue
from policies.facts import Facts, nan_to_num
from policies.schema import Node

_P_FLOOR = 1e-6  # probabilities are kept inside (0, 1) before taking log-odds


@dataclass(frozen=True)
class ActionEstimates:
    """Per case and action (catalogue order): settlement odds if taken now, and the value in CNY."""

    actions: tuple[str, ...]
    p_settle: np.ndarray  # (cases, actions): P(settled within 90 days | the action is taken now)
    recovery: np.ndarray  # (cases,): CNY recovered when the case settles (the recoverable claim)
    cost: np.ndarray  # (actions,): CNY
    source: tuple[str, ...]  # per action: "prior", or the name of the model that estimated it

    @property
    def value(self) -> np.ndarray:
        """(cases, actions) expected value in CNY."""
        return self.p_settle * self.recovery[:, None] - self.cost[None, :]


class ActionValue(Protocol):
    """Case facts in, an estimate per action out. ``name`` and ``version`` go into every answer."""

    name: str
    version: str

    def estimate(self, facts: Facts, catalogue: Catalogue, wanted: np.ndarray | None = None) -> ActionEstimates:
        """Estimates for every case of ``facts`` and every catalogue action; ``facts`` carries the
        scores (``p_reach``, ``p_settle``), the features and ``recoverable_claim`` (CNY).
        ``wanted`` (cases x actions, bool), when given, marks the estimates the caller will read
        (the eligible, unblocked actions); others may be left to any value."""
        ...


@dataclass(frozen=True)
class Modifier:
    """``coef`` x clip((fact - center) / scale, -clip, clip) log-odds; nothing when the fact is missing."""

    fact: str
    coef: float
    center: float = 0.0
    scale: float = 1.0
    clip: float = 1.0

    def shift(self, facts: Facts) -> np.ndarray:
        x = np.clip((facts[self.fact] - self.center) / self.scale, -self.clip, self.clip)
        return np.where(np.isnan(x), 0.0, self.coef * x)


@dataclass(frozen=True)
class Effect:
    """Prior effect of one action on the 90-day settlement odds."""

    log_odds: float
    needs_line: bool
    modifiers: tuple[Modifier, ...]
    note: str


@dataclass(frozen=True)
class Effects:
    version: str
    dead_line_log_odds: float  # added to a phone action when the debtor's line is known not to work
    actions: dict[str, Effect]


def parse_effects(root: Node, catalogue: Catalogue, known: tuple[str, ...]) -> Effects:
    """The priors of ``effects.yaml``; every catalogue action needs one."""
    top = root.mapping(allowed=("version", "source", "dead_line_log_odds", "actions"),
                       required=("version", "dead_line_log_odds", "actions"))
    entries = dict(top["actions"].items())
    missing = [name for name in catalogue.names if name not in entries]
    if missing:
        raise top["actions"].fail(f"every action needs a prior effect; missing: {', '.join(missing)}")
    effects = {}
    for name, node in entries.items():
        if name not in catalogue.names:
            raise node.fail(f"'{name}' is not in the action catalogue")
        keys = node.mapping(allowed=("log_odds", "needs_line", "modifiers", "note"), required=("log_odds", "note"))
        modifiers = []
        for item in keys["modifiers"].sequence() if "modifiers" in keys else []:
            parts = item.mapping(allowed=("fact", "coef", "center", "scale", "clip"), required=("fact", "coef"))
            fact = parts["fact"].text()
            if fact not in known:
                raise parts["fact"].fail(f"unknown fact '{fact}'")
            modifiers.append(Modifier(
                fact=fact, coef=parts["coef"].number(-5, 5),
                center=parts["center"].number() if "center" in parts else 0.0,
                scale=parts["scale"].number(minimum=1e-9) if "scale" in parts else 1.0,
                clip=parts["clip"].number(minimum=0) if "clip" in parts else 1.0))
        effects[name] = Effect(log_odds=keys["log_odds"].number(-20, 20),
                               needs_line=keys["needs_line"].flag() if "needs_line" in keys else False,
                               modifiers=tuple(modifiers), note=keys["note"].text())
    return Effects(version=str(top["version"].value), dead_line_log_odds=top["dead_line_log_odds"].number(-20, 0),
                   actions=effects)


class PriorValue:
    """The documented priors of ``effects.yaml`` applied to the settlement model's odds."""

    name = "prior"

    def __init__(self, effects: Effects) -> None:
        self.effects = effects
        self.version = f"effects-{effects.version}"

    def estimate(self, facts: Facts, catalogue: Catalogue, wanted: np.ndarray | None = None) -> ActionEstimates:
        base = np.clip(facts["p_settle"], _P_FLOOR, 1 - _P_FLOOR)
        logit = np.log(base / (1 - base))
        dead_line = facts["line_works"] == 0
        shifts = np.empty((facts.n, len(catalogue.actions)))
        for j, action in enumerate(catalogue.actions):
            effect = self.effects.actions[action.name]
            shift = np.full(facts.n, effect.log_odds)
            for modifier in effect.modifiers:
                shift += modifier.shift(facts)
            if effect.needs_line:
                shift += np.where(dead_line, self.effects.dead_line_log_odds, 0.0)
            shifts[:, j] = shift
        p_settle = 1.0 / (1.0 + np.exp(-(logit[:, None] + shifts)))
        recovery = nan_to_num(facts["recoverable_claim"], nan=0.0)
        return ActionEstimates(actions=catalogue.names, p_settle=p_settle, recovery=recovery,
                               cost=catalogue.costs(), source=("prior",) * len(catalogue.actions))
