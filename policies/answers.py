"""The engine's answers as people and programs read them: the batch table and one case's answer.

The batch table (``concord recommend --all``) has one row per case: ``case_id, creditor``, the
workflow and stage, the recommended ``action`` and its ``expected_value`` (CNY), the runner-up
actions with theirs, the blocked actions with the rule that blocked each, the recoverable claim,
the installment plan, flags, whether exploration drew the action and the probability it was
recommended with (``propensity``), and the versions that decided it. One case's answer
(:class:`Recommendation`, what the service returns) adds every eligible action ranked (with a 95 %
interval where the action-effect model estimated it), every blocked one with all its rules and
reasons, the ineligible ones with why, the risk flags, the top reasons behind the scores, and why
the recommended action beats the runner-up for this debtor (``explanation``, from the model).
Neither carries a name, an ID number or a phone number.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from policies.engine import RUNNER_UPS, Decisions

if TYPE_CHECKING:
    from policies.engine import PolicyEngine


def _flags(decisions: Decisions, engine: PolicyEngine) -> np.ndarray:
    """Per case: out_of_scope, no_eligible_action, needs_review (a sensitive action), '; '-joined."""
    catalogue = engine.policy.catalogue
    sensitive = np.array([a.sensitive for a in catalogue.actions])[decisions.chosen]
    columns = {
        "out_of_scope": decisions.facts["in_scope"] == 0,
        "no_eligible_action": decisions.fallback,
        "needs_review": sensitive & ~decisions.fallback,
    }
    out = np.full(decisions.facts.n, "", dtype=object)
    for name, hit in columns.items():
        out[hit] = np.where(out[hit] == "", name, out[hit] + "; " + name)
    return out


def _blocked_text(decisions: Decisions, engine: PolicyEngine) -> np.ndarray:
    """Per case: 'action: rule; ...' for the eligible actions a guardrail blocked."""
    shown = np.where(decisions.eligible, decisions.blocked_by, 0).astype(np.int16)
    rows = np.ascontiguousarray(shown).view(np.dtype((np.void, shown.dtype.itemsize * shown.shape[1]))).ravel()
    patterns, inverse = np.unique(rows, return_inverse=True)
    names, rules = engine.policy.catalogue.names, engine.policy.guardrails.rules
    texts = []
    for pattern in patterns:
        codes = np.frombuffer(pattern.tobytes(), dtype=np.int16)
        texts.append("; ".join(f"{names[j]}: {rules[c - 1].id}" for j, c in enumerate(codes) if c))
    return np.asarray(texts, dtype=object)[inverse.ravel()]


def batch_frame(decisions: Decisions, engine: PolicyEngine, cases: pd.DataFrame) -> pd.DataFrame:
    """The batch answer, one row per case of ``cases`` in the same order."""
    names = np.asarray(engine.policy.catalogue.names, dtype=object)
    n = decisions.facts.n
    value = decisions.estimates.value
    rows = np.arange(n)
    out = pd.DataFrame(
        {
            "case_id": decisions.facts.text("case_id"),
            "creditor": decisions.facts.text("creditor"),
            "workflow": decisions.workflow,
            "stage": decisions.stage,
            "action": names[decisions.chosen],
            "expected_value": np.round(decisions.value, 2),
            "p_settle_action": np.round(decisions.estimates.p_settle[rows, decisions.chosen], 4),
        }
    )
    # The runner-ups are the ranking after the chosen action (a fallback wait has ranking -1).
    start = np.where(decisions.fallback, 0, 1)
    for r in range(1, RUNNER_UPS + 1):
        column = np.full(n, -1)
        position = start + r - 1
        inside = position < decisions.ranking.shape[1]
        column[inside] = decisions.ranking[rows[inside], position[inside]]
        has = column >= 0
        out[f"runner_up_{r}"] = np.where(has, names[np.maximum(column, 0)], "")
        out[f"runner_up_{r}_value"] = np.where(has, np.round(value[rows, np.maximum(column, 0)], 2), np.nan)
    out["blocked"] = _blocked_text(decisions, engine)
    out["recoverable_claim"] = decisions.claims.outstanding
    plan = decisions.chosen == engine.policy.catalogue.index("installment_offer")
    out["installment_months"] = np.where(plan, decisions.offers.term_months, np.nan)
    out["installment_monthly_cny"] = np.where(plan, decisions.offers.monthly_cny, np.nan)
    out["flags"] = _flags(decisions, engine)
    out["explored"] = decisions.explored
    out["propensity"] = np.round(decisions.propensity, 6)
    out["policy_version"] = engine.policy.version
    out["action_value"] = engine.value_version
    for name in ("reachability_version", "settlement_version"):
        if name in cases.columns:
            out[name] = cases[name].to_numpy()
    return out


@dataclass(frozen=True)
class RankedAction:
    action: str
    expected_value: float  # CNY
    p_settle: float  # P(settled within 90 days | this action now)
    cost_cny: float
    source: str  # "prior", or the model that estimated it
    p_settle_low: float | None = None  # 95 % interval of p_settle (the model's bootstrap members)
    p_settle_high: float | None = None
    value_low: float | None = None  # CNY, from the interval of p_settle
    value_high: float | None = None


@dataclass(frozen=True)
class BlockedAction:
    action: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class IneligibleAction:
    action: str
    why: str


@dataclass(frozen=True)
class InstallmentPlan:
    status: str  # full, partial, no_income, below_minimum, nothing_owed
    term_months: int | None
    monthly_cny: float | None
    covers: float | None  # share of the recoverable claim repaid
    capacity_cny: float | None  # monthly capacity estimated from the profile


@dataclass(frozen=True)
class Recommendation:
    """One case's answer. ``to_dict`` gives plain JSON-ready data."""

    case_id: str
    creditor: str
    decided_at: str  # ISO 8601, UTC
    workflow: str
    stage: str
    action: str
    expected_value: float
    needs_review: bool
    fallback: bool  # nothing eligible and unblocked was left: wait
    ranked: tuple[RankedAction, ...]
    blocked: tuple[BlockedAction, ...]
    ineligible: tuple[IneligibleAction, ...]
    flags: tuple[str, ...]
    risk_flags: tuple[str, ...]
    recoverable_claim: float
    installment: InstallmentPlan
    reasons: tuple[Any, ...]
    policy_version: str
    action_value: str
    model_versions: dict[str, str]
    greedy_action: str = ""  # the best action by value (differs from ``action`` when explored)
    explored: bool = False  # exploration drew the action at random
    epsilon: float = 0.0  # the exploration share applied to this case
    propensity: float = 1.0  # the probability with which ``action`` was recommended: record it with the action
    explanation: Any = None  # policies.learned_value.Explanation, or None (prior values, or no runner-up)

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, without its deep copies (every leaf here is immutable)."""
        return _as_dict(self)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _as_dict(value: Any) -> Any:
    """Dataclasses as dicts, tuples and lists rebuilt, dicts copied, leaves as they are: what
    ``dataclasses.asdict`` gives for the answers' plain leaves (text, numbers, None)."""
    kind = type(value)
    if kind in (str, float, int, bool) or value is None:
        return value
    names = _FIELDS.get(kind)
    if names is None and is_dataclass(value):
        names = _FIELDS.setdefault(kind, tuple(f.name for f in fields(value)))
    if names is not None:
        return {name: _as_dict(getattr(value, name)) for name in names}
    if kind in (tuple, list):
        return kind(_as_dict(item) for item in value)
    if kind is dict:
        return {key: _as_dict(item) for key, item in value.items()}
    return copy.deepcopy(value)


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def single_answer(
    decisions: Decisions, engine: PolicyEngine, reasons: tuple[Any, ...], model_versions: dict[str, str]
) -> Recommendation:
    """The answer for the one case of ``decisions``."""
    policy, facts = engine.policy, decisions.facts
    catalogue, est = policy.catalogue, decisions.estimates
    value = est.value[0]
    candidate = decisions.eligible[0] & (decisions.blocked_by[0] == 0)
    order = [int(j) for j in np.argsort(-np.where(candidate, value, -np.inf), kind="stable") if candidate[j]]
    low, high = _intervals(decisions, engine)
    recovery = float(est.recovery[0])
    ranked = tuple(
        RankedAction(
            catalogue.names[j],
            round(float(value[j]), 2),
            round(float(est.p_settle[0, j]), 6),
            catalogue.actions[j].cost_cny,
            est.source[j],
            _rounded(low[j], 6),
            _rounded(high[j], 6),
            _rounded(low[j] * recovery - catalogue.actions[j].cost_cny, 2),
            _rounded(high[j] * recovery - catalogue.actions[j].cost_cny, 2),
        )
        for j in order
    )
    rule_hits = [
        hit[0]
        for hit in (
            decisions.rule_hits
            if decisions.rule_hits is not None
            else [rule.matrix(facts, catalogue) for rule in policy.guardrails.rules]
        )
    ]
    blocked, ineligible = [], []
    stage_allows = engine.stage_allows(str(decisions.workflow[0]), str(decisions.stage[0]))
    for j, action in enumerate(catalogue.actions):
        if decisions.eligible[0, j] and decisions.blocked_by[0, j]:
            hits = [rule for rule, hit in zip(policy.guardrails.rules, rule_hits, strict=True) if hit[j]]
            if not hits:  # blocked only by a cap counted across the batch
                hits = [policy.guardrails.rules[decisions.blocked_by[0, j] - 1]]
            blocked.append(BlockedAction(action.name, tuple(r.id for r in hits), tuple(r.reason for r in hits)))
        elif not decisions.eligible[0, j]:
            why = (
                f"precondition not met: {_described(action.requires)}"
                if stage_allows[j]
                else f"not an action of the stage '{decisions.stage[0]}'"
            )
            ineligible.append(IneligibleAction(action.name, why))
    offers = decisions.offers
    term = offers.term_months[0]
    flags = _one_case_flags(decisions, engine)
    # flag_text(risk_flags(facts, policy.court), policy.court)[0], without the object arrays
    raised = "; ".join(flag.id for flag in policy.court.flags if flag.when.evaluate(facts)[0])
    decided = dt.datetime.fromtimestamp(float(facts["decision_ts"][0]), dt.UTC).isoformat()
    return Recommendation(
        case_id=str(facts.text("case_id")[0]),
        creditor=str(facts.text("creditor")[0]),
        decided_at=decided,
        workflow=str(decisions.workflow[0]),
        stage=str(decisions.stage[0]),
        action=catalogue.names[int(decisions.chosen[0])],
        expected_value=round(float(decisions.value[0]), 2),
        needs_review="needs_review" in flags,
        fallback=bool(decisions.fallback[0]),
        ranked=ranked,
        blocked=tuple(blocked),
        ineligible=tuple(ineligible),
        flags=tuple(f for f in flags.split("; ") if f),
        risk_flags=tuple(f for f in raised.split("; ") if f),
        recoverable_claim=float(decisions.claims.outstanding[0]),
        installment=InstallmentPlan(
            str(offers.status[0]),
            None if np.isnan(term) else int(term),
            _number(offers.monthly_cny[0]),
            _number(offers.covers[0]),
            _number(offers.capacity_cny[0]),
        ),
        reasons=reasons,
        policy_version=policy.version,
        action_value=engine.value_version,
        model_versions=model_versions,
        greedy_action=catalogue.names[int(decisions.greedy[0])],
        explored=bool(decisions.explored[0]),
        epsilon=float(decisions.epsilon[0]),
        propensity=round(float(decisions.propensity[0]), 6),
        explanation=_explanation(decisions, engine, order),
    )


def _one_case_flags(decisions: Decisions, engine: PolicyEngine) -> str:
    """``_flags(decisions, engine)[0]`` for the one case of ``decisions``, on plain values."""
    chosen, fallback = int(decisions.chosen[0]), bool(decisions.fallback[0])
    hits = (
        ("out_of_scope", decisions.facts["in_scope"][0] == 0),
        ("no_eligible_action", fallback),
        ("needs_review", engine.policy.catalogue.actions[chosen].sensitive and not fallback),
    )
    return "; ".join(name for name, hit in hits if hit)


_DESCRIBED: dict[int, tuple[Any, str]] = {}


def _described(condition: Any) -> str:
    """``condition.describe()``, worded once per condition (the catalogue's are built once)."""
    found = _DESCRIBED.get(id(condition))
    if found is None or found[0] is not condition:
        found = _DESCRIBED[id(condition)] = (condition, condition.describe())
    return found[1]


def _rounded(value: float, digits: int) -> float | None:
    return None if np.isnan(value) else round(float(value), digits)


def _intervals(decisions: Decisions, engine: PolicyEngine) -> tuple[np.ndarray, np.ndarray]:
    """Per action, the 95 % interval of p_settle for the one case (NaN where there is none)."""
    value = engine.action_value
    if hasattr(value, "intervals"):
        low, high = value.intervals(decisions.facts, engine.policy.catalogue)
        return low[0], high[0]
    nan = np.full(len(engine.policy.catalogue.actions), np.nan)
    return nan, nan


def _explanation(decisions: Decisions, engine: PolicyEngine, order: list[int]) -> Any:
    """Why the best action beats the runner-up, when the values come from a model that can say."""
    value = engine.action_value
    if len(order) < 2 or not hasattr(value, "explain"):
        return None
    return value.explain(decisions.facts, engine.policy.catalogue, decisions.estimates, order[0], order[1])


def one_case(decisions: Decisions, i: int) -> Decisions:
    """The decisions of case ``i`` of a batch, as if it had been decided alone (caps counted
    across the batch stay as the batch decided them)."""
    from dataclasses import replace

    rows = slice(i, i + 1)
    estimates = replace(
        decisions.estimates, p_settle=decisions.estimates.p_settle[rows], recovery=decisions.estimates.recovery[rows]
    )
    claims = replace(
        decisions.claims, **{f: getattr(decisions.claims, f)[rows] for f in decisions.claims.__dataclass_fields__}
    )
    offers = replace(
        decisions.offers, **{f: getattr(decisions.offers, f)[rows] for f in decisions.offers.__dataclass_fields__}
    )
    return Decisions(
        facts=decisions.facts.subset(np.array([i])),
        workflow=decisions.workflow[rows],
        stage=decisions.stage[rows],
        eligible=decisions.eligible[rows],
        blocked_by=decisions.blocked_by[rows],
        estimates=estimates,
        chosen=decisions.chosen[rows],
        fallback=decisions.fallback[rows],
        ranking=decisions.ranking[rows],
        claims=claims,
        limitation_day=decisions.limitation_day[rows],
        offers=offers,
        greedy=decisions.greedy[rows],
        explored=decisions.explored[rows],
        probabilities=decisions.probabilities[rows],
        epsilon=decisions.epsilon[rows],
    )


def batch_answers(
    decisions: Decisions, engine: PolicyEngine, reasons: list[tuple[Any, ...]], model_versions: dict[str, str]
) -> list[Recommendation]:
    """One :class:`Recommendation` per case of a batch decided together (so that per-debtor caps
    hold across the batch), with each case's reasons."""
    return [single_answer(one_case(decisions, i), engine, reasons[i], model_versions) for i in range(decisions.facts.n)]
