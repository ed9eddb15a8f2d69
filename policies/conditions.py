"""Conditions in policy YAML: a small grammar over case facts, read once, evaluated for many cases.

A condition is one of::

    {fact: days_without_callback, op: ">=", value: 30}   # a comparison (ops: == != < <= > >= in, not in)
    {fact: ever_reached}                                  # shorthand: the fact is above 0
    {all: [<condition>, ...]}                             # every one holds
    {any: [<condition>, ...]}                             # at least one holds
    {not: <condition>}
    true / false                                          # always / never

Facts are named in ``policies/facts.py``; an unknown fact name is refused on load. A comparison
on a missing value (NaN) is false, whatever the operator.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.facts import TEXT_FACT_SET, TEXT_FACTS, Facts
from policies.schema import Node

_NUMERIC_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
OPS = (*_NUMERIC_OPS, "in", "not in")


class Condition:
    """A condition over facts: ``evaluate`` gives one boolean per case."""

    def evaluate(self, facts: Facts) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Condition):
    """``true`` or ``false``."""

    value: bool

    def evaluate(self, facts: Facts) -> np.ndarray:
        return np.full(facts.n, self.value)

    def describe(self) -> str:
        return "always" if self.value else "never"


@dataclass(frozen=True)
class Comparison(Condition):
    """``fact op value``; false where the fact is missing."""

    fact: str
    op: str
    value: Any

    def evaluate(self, facts: Facts) -> np.ndarray:
        if self.fact in TEXT_FACT_SET:
            values = facts.text(self.fact)
            if self.op in ("in", "not in"):
                inside = np.isin(values, list(self.value))
                return inside if self.op == "in" else ~inside
            return np.asarray(_NUMERIC_OPS[self.op](values, self.value), dtype=bool)
        numbers = facts[self.fact]
        if facts.n == 1 and self.op not in ("in", "not in"):
            # One case (the service): the same comparison on a Python float, without four ufunc
            # calls on a one-element array (NaN is false; numpy compares with the value as float64)
            x = float(numbers[0])
            return _ONE[x == x and bool(_NUMERIC_OPS[self.op](x, _as_float(self.value)))]
        known = ~np.isnan(numbers)
        if self.op in ("in", "not in"):
            inside = np.isin(numbers, np.asarray(self.value, dtype=float))
            return known & (inside if self.op == "in" else ~inside)
        return known & _NUMERIC_OPS[self.op](numbers, self.value)

    def describe(self) -> str:
        shown = "[" + ", ".join(map(str, self.value)) + "]" if isinstance(self.value, (list, tuple)) else self.value
        return f"{self.fact} {self.op} {shown}"


_FALSE, _TRUE = np.zeros(1, dtype=bool), np.ones(1, dtype=bool)
_FALSE.flags.writeable = _TRUE.flags.writeable = False  # shared: callers combine them, never write into them
_ONE = (_FALSE, _TRUE)


def _as_float(value: Any) -> Any:
    """A comparison's value as numpy compares it with a float64 fact: numbers (and flags) as
    float, anything else (text) as it is."""
    return float(value) if isinstance(value, (int, float)) else value


@dataclass(frozen=True)
class Combined(Condition):
    """Every part holds (``every``), or at least one does."""

    parts: tuple[Condition, ...]
    every: bool

    def evaluate(self, facts: Facts) -> np.ndarray:
        out = np.full(facts.n, self.every)
        for part in self.parts:
            out = (out & part.evaluate(facts)) if self.every else (out | part.evaluate(facts))
        return out

    def describe(self) -> str:
        return "(" + (" and " if self.every else " or ").join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class Not(Condition):
    part: Condition

    def evaluate(self, facts: Facts) -> np.ndarray:
        return ~self.part.evaluate(facts)

    def describe(self) -> str:
        return f"not {self.part.describe()}"


ALWAYS = Constant(True)


def parse_condition(node: Node, known: tuple[str, ...]) -> Condition:
    """A condition from its YAML node; ``known`` are the fact names it may use."""
    if isinstance(node.value, bool):
        return Constant(node.value)
    if isinstance(node.value, dict) and len(node.value) == 1 and next(iter(node.value)) in ("all", "any", "not"):
        ((key, child),) = node.mapping().items()
        if key == "not":
            return Not(parse_condition(child, known))
        parts = tuple(parse_condition(part, known) for part in child.sequence())
        if not parts:
            raise child.fail(f"'{key}' needs at least one condition")
        return Combined(parts, every=key == "all")
    keys = node.mapping(allowed=("fact", "op", "value"), required=("fact",))
    fact = keys["fact"].text()
    if fact not in known:
        raise keys["fact"].fail(f"unknown fact '{fact}' (facts are listed in docs/policies.md)")
    if "op" not in keys:
        if "value" in keys:
            raise node.fail("a condition with a value needs an op")
        return Comparison(fact, ">", 0)
    op = keys["op"].text(OPS)
    if "value" not in keys:
        raise node.fail(f"the comparison '{fact} {op}' needs a value")
    value = keys["value"]
    if op in ("in", "not in"):
        items = value.sequence()
        parsed: Any = tuple(_scalar(item, fact) for item in items)
    else:
        parsed = _scalar(value, fact)
    if fact not in TEXT_FACTS and op in ("<", "<=", ">", ">=") and isinstance(parsed, str):
        raise value.fail(f"'{fact}' is a number: compare it with a number")
    return Comparison(fact, op, parsed)


def _scalar(node: Node, fact: str) -> Any:
    if fact in TEXT_FACTS:
        return node.text()
    if isinstance(node.value, bool):
        return float(node.value)
    return node.number()
