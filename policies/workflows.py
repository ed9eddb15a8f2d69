"""Workflows (``policies/workflow_*.yaml``): the stages a case passes, the actions each stage allows,
and the transitions between stages with their conditions; and which workflow a case follows.

A case's stage is found by walking from the workflow's start: at each stage the first transition
whose condition holds for the case moves it on, until none does. The transitions must form no
cycle (refused on load, naming the cycle), so the walk ends, and one pass over the stages in
topological order places every case. The two shipped workflows are the five-level funnel
(五级分流, seed 000) and the "1+X" chain (seed 004) of DOMAIN.md; ``policy.yaml`` chooses one per
court, else per creditor, else the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policies.catalogue import Catalogue
from policies.conditions import Condition, parse_condition
from policies.facts import Facts
from policies.schema import Node, PolicyError


@dataclass(frozen=True)
class Transition:
    """Move to ``target`` when ``when`` holds."""

    target: str
    when: Condition


@dataclass(frozen=True)
class Stage:
    """A stage: the actions it allows and where a case goes from it."""

    name: str
    zh: str
    actions: tuple[str, ...]
    transitions: tuple[Transition, ...]


@dataclass(frozen=True)
class Workflow:
    """A workflow; ``order`` lists its stages topologically (a stage before every stage it leads to)."""

    name: str
    zh: str
    version: str
    start: str
    stages: dict[str, Stage]
    order: tuple[str, ...]

    def stage_of(self, facts: Facts) -> np.ndarray:
        """Each case's stage, as an index into ``order``."""
        position = {name: i for i, name in enumerate(self.order)}
        current = np.full(facts.n, position[self.start], dtype=np.int16)
        for name in self.order:
            here = current == position[name]
            if not here.any():
                continue
            for transition in self.stages[name].transitions:
                moving = here & transition.when.evaluate(facts)
                current[moving] = position[transition.target]
                here &= ~moving
        return current

    def allowed(self, catalogue: Catalogue) -> np.ndarray:
        """Boolean table (stage in ``order`` x action in catalogue order): what each stage allows."""
        return np.stack([catalogue.mask(self.stages[name].actions) for name in self.order])


@dataclass(frozen=True)
class WorkflowChoice:
    """Which workflow a case follows: by its court, else its creditor, else the default."""

    default: str
    by_creditor: dict[str, str] = field(default_factory=dict)
    by_court: dict[str, str] = field(default_factory=dict)

    def choose(self, facts: Facts) -> np.ndarray:
        """The workflow name of each case (object array)."""
        chosen = np.full(facts.n, self.default, dtype=object)
        for key, table in (("creditor", self.by_creditor), ("court", self.by_court)):  # court wins: applied last
            if table:
                names = facts.text(key)
                for value, workflow in table.items():
                    chosen[names == value] = workflow
        return chosen


def parse_workflow(root: Node, catalogue: Catalogue, known: tuple[str, ...]) -> Workflow:
    """A workflow from its file's top node; actions must be in the catalogue, facts known."""
    top = root.mapping(
        allowed=("name", "zh", "version", "description", "start", "stages"),
        required=("name", "version", "start", "stages"),
    )
    stage_nodes = dict(top["stages"].items())
    if not stage_nodes:
        raise top["stages"].fail("a workflow needs at least one stage")
    start = top["start"].text(tuple(stage_nodes))
    stages = {}
    for name, node in stage_nodes.items():
        keys = node.mapping(allowed=("zh", "actions", "next"), required=("actions",))
        transitions = []
        for step in keys["next"].sequence() if "next" in keys else []:
            parts = step.mapping(allowed=("to", "when"), required=("to", "when"))
            target = parts["to"].text()
            if target not in stage_nodes:
                raise parts["to"].fail(f"unknown stage '{target}' (stages: {', '.join(stage_nodes)})")
            transitions.append(Transition(target, parse_condition(parts["when"], known)))
        stages[name] = Stage(
            name=name,
            zh=keys["zh"].text() if "zh" in keys else name,
            actions=keys["actions"].names(catalogue.names, "action"),
            transitions=tuple(transitions),
        )
    order = _topological_order(stages, start, top["stages"])
    return Workflow(
        name=top["name"].text(),
        zh=top["zh"].text() if "zh" in top else top["name"].text(),
        version=str(top["version"].value),
        start=start,
        stages=stages,
        order=order,
    )


def _topological_order(stages: dict[str, Stage], start: str, where: Node) -> tuple[str, ...]:
    """Stages ordered so that every transition goes forward; refuses a cycle or an unreachable stage."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once ordered
    finished: list[str] = []

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = path[path.index(name) :]  # the path ends where it began
            raise where.fail(f"the transitions form a cycle: {' -> '.join(cycle)}")
        state[name] = "open"
        for transition in stages[name].transitions:
            visit(transition.target, [*path, transition.target])
        state[name] = "done"
        finished.append(name)

    for name in stages:  # every stage, so that a cycle among unreachable stages is found too
        visit(name, [name])
    reachable = {start}
    for name in reversed(finished):
        if name in reachable:
            reachable.update(t.target for t in stages[name].transitions)
    unreachable = [name for name in stages if name not in reachable]
    if unreachable:
        raise where.fail(f"no transition leads from the start '{start}' to the stage '{unreachable[0]}'")
    return tuple(reversed(finished))


def parse_choice(node: Node, workflows: dict[str, Workflow]) -> WorkflowChoice:
    """``policy.yaml``'s ``workflows`` section: the default and the per-creditor and per-court choices."""
    keys = node.mapping(allowed=("files", "default", "by_creditor", "by_court"), required=("files", "default"))
    names = tuple(workflows)
    tables: dict[str, dict[str, str]] = {}
    for key in ("by_creditor", "by_court"):
        tables[key] = {}
        if key in keys and keys[key].value is not None:
            for who, choice in keys[key].items():
                tables[key][who] = choice.text(names)
    return WorkflowChoice(
        default=keys["default"].text(names), by_creditor=tables["by_creditor"], by_court=tables["by_court"]
    )


def check_unique(workflows: list[Workflow], where: Node) -> dict[str, Workflow]:
    """Workflows by name; two files declaring the same name are refused."""
    out: dict[str, Workflow] = {}
    for workflow in workflows:
        if workflow.name in out:
            raise PolicyError(f"{where.file}: two workflow files declare the name '{workflow.name}'.")
        out[workflow.name] = workflow
    return out
