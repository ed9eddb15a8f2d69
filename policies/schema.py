"""Reading policy YAML: nodes that know their file and key path, and the one sentence a bad key gets.

Every section parser (catalogue, workflows, guardrails, effects, claims, offers, risk flags,
assignment) walks its file through :class:`Node`, so that any error names the file and the path
of the key at fault, e.g. ``policies/guardrails.yaml: caps[1].limit: must be a whole number at
least 1, not 'six'.``
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class PolicyError(ValueError):
    """A policy file is missing, unreadable or holds a bad key; the message is one sentence."""


@dataclass(frozen=True)
class Node:
    """A value read from a policy file, with the file and the key path that lead to it."""

    value: Any
    file: str
    path: str = ""

    def fail(self, problem: str) -> PolicyError:
        """The error for this key: ``file: path: problem.``"""
        where = f"{self.file}: {self.path}" if self.path else self.file
        return PolicyError(f"{where}: {problem.rstrip('.')}.")

    def child(self, key: str | int, value: Any) -> Node:
        """The node of ``key`` (a mapping key or a list index) below this one."""
        if isinstance(key, int):
            return Node(value, self.file, f"{self.path}[{key}]")
        return Node(value, self.file, f"{self.path}.{key}" if self.path else key)

    # -- shapes ---------------------------------------------------------------------------------

    def mapping(self, allowed: tuple[str, ...] | None = None, required: tuple[str, ...] = ()) -> dict[str, Node]:
        """The node as a mapping of child nodes; unknown keys (outside ``allowed``) and missing
        ``required`` keys are refused."""
        if not isinstance(self.value, dict):
            raise self.fail(f"must be a mapping of keys to values, not {_shown(self.value)}")
        children = {}
        for key, value in self.value.items():
            if not isinstance(key, str):
                raise self.fail(f"key {_shown(key)} must be text")
            if allowed is not None and key not in allowed:
                raise self.child(key, value).fail(f"unknown key '{key}' (allowed here: {', '.join(allowed)})")
            children[key] = self.child(key, value)
        for key in required:
            if key not in children:
                raise self.fail(f"the key '{key}' is required")
        return children

    def items(self) -> Iterator[tuple[str, Node]]:
        """Key and child node of a mapping whose keys are free names (actions, stages, ...)."""
        yield from self.mapping().items()

    def sequence(self) -> list[Node]:
        """The node as a list of child nodes."""
        if not isinstance(self.value, list):
            raise self.fail(f"must be a list, not {_shown(self.value)}")
        return [self.child(i, value) for i, value in enumerate(self.value)]

    # -- scalars --------------------------------------------------------------------------------

    def text(self, choices: tuple[str, ...] | None = None) -> str:
        """The node as text, one of ``choices`` when given."""
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.fail(f"must be non-empty text, not {_shown(self.value)}")
        if choices is not None and self.value not in choices:
            raise self.fail(f"must be one of {', '.join(choices)}, not '{self.value}'")
        return self.value

    def number(self, minimum: float | None = None, maximum: float | None = None) -> float:
        """The node as a number within [minimum, maximum]."""
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.fail(f"must be a number, not {_shown(self.value)}")
        value = float(self.value)
        if minimum is not None and value < minimum:
            raise self.fail(f"must be at least {minimum:g}, not {value:g}")
        if maximum is not None and value > maximum:
            raise self.fail(f"must be at most {maximum:g}, not {value:g}")
        return value

    def whole(self, minimum: int | None = None) -> int:
        """The node as a whole number, at least ``minimum``."""
        if (
            isinstance(self.value, bool)
            or not isinstance(self.value, int)
            or (minimum is not None and self.value < minimum)
        ):
            bound = f" at least {minimum}" if minimum is not None else ""
            raise self.fail(f"must be a whole number{bound}, not {_shown(self.value)}")
        return int(self.value)

    def flag(self) -> bool:
        """The node as true or false."""
        if not isinstance(self.value, bool):
            raise self.fail(f"must be true or false, not {_shown(self.value)}")
        return self.value

    def names(self, known: tuple[str, ...] | None = None, what: str = "name") -> tuple[str, ...]:
        """A list of distinct names, each one of ``known`` when given."""
        out: list[str] = []
        for child in self.sequence():
            name = child.text()
            if known is not None and name not in known:
                raise child.fail(f"unknown {what} '{name}'")
            if name in out:
                raise child.fail(f"'{name}' is listed twice")
            out.append(name)
        return tuple(out)


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"'{value}'"


def read_yaml(path: Path, label: str) -> Node:
    """The top node of a policy YAML file; ``label`` is how errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{label}: the policy file is missing.") from None
    except OSError as error:
        raise PolicyError(f"{label}: cannot be read ({error.strerror}).") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{label}: is not valid YAML{line}.") from None
    return Node(value, label)
