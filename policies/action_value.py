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
from functools import cached_property
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

    @cached_property
    def value(self) -> np.ndarray:
        """(cases, actions) expected value in CNY (computed once; do not write into it)."""
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
    top = root.mapping(
        allowed=("version", "source", "dead_line_log_odds", "actions"),
        required=("version", "dead_line_log_odds", "actions"),
    )
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
            modifiers.append(
                Modifier(
                    fact=fact,
                    coef=parts["coef"].number(-5, 5),
                    center=parts["center"].number() if "center" in parts else 0.0,
                    scale=parts["scale"].number(minimum=1e-9) if "scale" in parts else 1.0,
                    clip=parts["clip"].number(minimum=0) if "clip" in parts else 1.0,
                )
            )
        effects[name] = Effect(
            log_odds=keys["log_odds"].number(-20, 20),
            needs_line=keys["needs_line"].flag() if "needs_line" in keys else False,
            modifiers=tuple(modifiers),
            note=keys["note"].text(),
        )
    return Effects(
        version=str(top["version"].value), dead_line_log_odds=top["dead_line_log_odds"].number(-20, 0), actions=effects
    )


class PriorValue:
    """The documented priors of ``effects.yaml`` applied to the settlement model's odds."""

    name = "prior"

    def __init__(self, effects: Effects) -> None:
        self.effects = effects
        self.version = f"effects-{effects.version}"
        self._plans: dict[int, _Plan] = {}

    def _plan(self, catalogue: Catalogue) -> _Plan:
        """The catalogue's priors as arrays, built once per catalogue."""
        plan = self._plans.get(id(catalogue))
        if plan is not None and plan.catalogue is catalogue:
            return plan
        modifiers: list[Modifier] = []
        actions = []
        for action in catalogue.actions:
            effect = self.effects.actions[action.name]
            first = len(modifiers)
            modifiers.extend(effect.modifiers)
            actions.append((effect.log_odds, tuple(range(first, len(modifiers))), effect.needs_line))
        plan = _Plan(
            catalogue,
            tuple(m.fact for m in modifiers),
            np.array([m.center for m in modifiers]),
            np.array([m.scale for m in modifiers]),
            np.array([m.clip for m in modifiers]),
            np.array([m.coef for m in modifiers]),
            tuple(actions),
        )
        self._plans[id(catalogue)] = plan
        return plan

    def estimate(self, facts: Facts, catalogue: Catalogue, wanted: np.ndarray | None = None) -> ActionEstimates:
        base = np.clip(facts["p_settle"], _P_FLOOR, 1 - _P_FLOOR)
        logit = np.log(base / (1 - base))
        dead_line = np.where(facts["line_works"] == 0, self.effects.dead_line_log_odds, 0.0)
        plan = self._plan(catalogue)
        # every modifier's shift at once (Modifier.shift, element for element), then summed per action
        # in the order effects.yaml lists them
        shift_of = np.zeros((facts.n, 0))
        if plan.facts:
            x = np.column_stack([facts[name] for name in plan.facts])
            x = np.clip((x - plan.center) / plan.scale, -plan.clip, plan.clip)
            shift_of = np.where(np.isnan(x), 0.0, plan.coef * x)
        shifts = (_one_case_shifts if facts.n == 1 else _shifts)(plan, shift_of, dead_line)
        p_settle = 1.0 / (1.0 + np.exp(-(logit[:, None] + shifts)))
        recovery = nan_to_num(facts["recoverable_claim"], nan=0.0)
        return ActionEstimates(
            actions=catalogue.names,
            p_settle=p_settle,
            recovery=recovery,
            cost=catalogue.costs(),
            source=("prior",) * len(catalogue.actions),
        )


def _shifts(plan: _Plan, shift_of: np.ndarray, dead_line: np.ndarray) -> np.ndarray:
    """(cases x actions) each action's log-odds shift: its prior log-odds plus its modifiers'
    shifts in the order ``effects.yaml`` lists them, plus the dead-line shift where it needs a line."""
    n = len(dead_line)
    shifts = np.empty((n, len(plan.actions)))
    for j, (log_odds, modifiers, needs_line) in enumerate(plan.actions):
        shift = np.full(n, log_odds)
        for m in modifiers:
            shift += shift_of[:, m]
        if needs_line:
            shift += dead_line
        shifts[:, j] = shift
    return shifts


def _one_case_shifts(plan: _Plan, shift_of: np.ndarray, dead_line: np.ndarray) -> np.ndarray:
    """:func:`_shifts` for one case: the same float64 sums in the same order, on Python floats
    (no numpy call per action and modifier)."""
    row, line = shift_of[0].tolist(), float(dead_line[0])
    out = []
    for log_odds, modifiers, needs_line in plan.actions:
        total = float(log_odds)
        for m in modifiers:
            total += row[m]
        if needs_line:
            total += line
        out.append(total)
    return np.array([out], dtype=np.float64)


@dataclass(frozen=True)
class _Plan:
    """A catalogue's priors as arrays: each modifier's fact and parameters, and per action its
    log-odds, the modifiers it sums (indices) and whether it needs a working line."""

    catalogue: Catalogue
    facts: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    clip: np.ndarray
    coef: np.ndarray
    actions: tuple[tuple[float, tuple[int, ...], bool], ...]
