"""The policy engine: from case facts and scores to the next best action, for a batch or one case.

For every case: its claim to the decision date; its workflow and stage; the actions the stage
allows whose preconditions hold (eligible); the guardrails that block any of them (each block
names its rule); the expected value of each action (``ActionValue``); the best eligible,
unblocked action, ties broken by catalogue order. When nothing is left, the answer is ``wait``
and says so. In a batch, per-debtor caps are also enforced across the debtor's cases: of several
cases of one debtor choosing a capped channel, the most valuable keep what is left of the cap and
the others are ranked again without that action.

Exploration (``policies/exploration.py``): where the policy gives a creditor a share epsilon, that
share of its recommendations is taken at random among the case's explorable candidates; every
answer carries the probability it was made with (``propensity``), so that Concord's own decisions
become propensity-logged history. Off by default.

Deterministic: the same facts and policy version give the same answer, whatever the order of the
cases (exploration's draws are hashes of the case id and decision time). Load the policy and build
the engine once; :meth:`PolicyEngine.decide` does no I/O.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from policies.action_value import ActionEstimates, ActionValue, PriorValue
from policies.claims import Claims, compute_claims, limitation_end_day, local_day
from policies.conditions import ALWAYS
from policies.config import Policy
from policies.exploration import explore, uniforms
from policies.facts import Facts, nan_to_num
from policies.guardrails import debtor_overflow
from policies.offers import Offers, size_offers

RUNNER_UPS = 3


@dataclass(frozen=True)
class Decisions:
    """Everything decided for a batch of cases (arrays in case order; actions in catalogue order)."""

    facts: Facts
    workflow: np.ndarray  # object: workflow name per case
    stage: np.ndarray  # object: stage name per case
    eligible: np.ndarray  # (cases, actions) allowed by the stage and the action's preconditions
    blocked_by: np.ndarray  # (cases, actions) 0, or 1 + the index of the first guardrail blocking it
    estimates: ActionEstimates
    chosen: np.ndarray  # (cases,) action index: the best, or the one exploration drew
    fallback: np.ndarray  # (cases,) True where nothing eligible was left and the answer is wait
    ranking: np.ndarray  # (cases, 1 + RUNNER_UPS) action indices, best first, -1 where fewer
    claims: Claims
    limitation_day: np.ndarray  # days since 1970-01-01 when the limitation period ends
    offers: Offers
    greedy: np.ndarray  # (cases,) the best action by value (= chosen unless explored)
    explored: np.ndarray  # (cases,) True where exploration drew the action
    probabilities: np.ndarray  # (cases, actions) the chance each action had of being recommended
    epsilon: np.ndarray  # (cases,) the exploration share applied
    # One case decided alone: each guardrail's (1 x actions) hits, which its answer lists in full
    # (None for a batch, where they would take cases x actions x rules of memory)
    rule_hits: tuple[np.ndarray, ...] | None = None

    @property
    def value(self) -> np.ndarray:
        """(cases,) expected value of the chosen action, CNY."""
        return self.estimates.value[np.arange(len(self.chosen)), self.chosen]

    @property
    def propensity(self) -> np.ndarray:
        """(cases,) the probability with which the recommended action was chosen."""
        return self.probabilities[np.arange(len(self.chosen)), self.chosen]


class PolicyEngine:
    """Decides with one policy and one ``ActionValue`` estimator (default: the documented priors)."""

    def __init__(self, policy: Policy, action_value: ActionValue | None = None) -> None:
        self.policy = policy
        self.action_value: ActionValue = action_value or PriorValue(policy.effects)
        self._allowed = {name: workflow.allowed(policy.catalogue) for name, workflow in policy.workflows.items()}
        self._wait = policy.catalogue.index("wait")
        self._explorable = policy.exploration.explorable(policy.catalogue)
        # Estimators written before ``wanted`` existed keep working: it is passed only to those that take it.
        self._takes_wanted = "wanted" in inspect.signature(self.action_value.estimate).parameters

    @property
    def value_version(self) -> str:
        """The estimator behind the values, as ``name:version``."""
        return f"{self.action_value.name}:{self.action_value.version}"

    def stage_allows(self, workflow: str, stage: str) -> np.ndarray:
        """Boolean mask over the catalogue: the actions ``stage`` of ``workflow`` allows."""
        return self._allowed[workflow][self.policy.workflows[workflow].order.index(stage)]

    def decide(self, facts: Facts) -> Decisions:
        """Decide for every case of ``facts`` (which must carry ``p_reach``, ``p_settle`` and
        ``decision_ts``). Adds ``recoverable_claim`` and ``days_to_limitation`` to the facts."""
        policy, catalogue = self.policy, self.policy.catalogue
        claims = compute_claims(facts, policy.claims)
        facts.set("recoverable_claim", claims.outstanding)
        limitation = limitation_end_day(facts, policy.claims)
        facts.set("days_to_limitation", limitation - local_day(facts["decision_ts"]))
        workflow, stage, eligible = self._stages(facts)
        for j, action in enumerate(catalogue.actions):
            if action.requires is not ALWAYS:
                eligible[:, j] &= action.requires.evaluate(facts)
        blocked_by = np.zeros(eligible.shape, dtype=np.int16)
        hits = tuple(rule.matrix(facts, catalogue) for rule in policy.guardrails.rules)
        for k, hit in enumerate(hits):
            blocked_by[(blocked_by == 0) & hit] = k + 1
        candidate = eligible & (blocked_by == 0)
        estimates = (
            self.action_value.estimate(facts, catalogue, candidate.copy())
            if self._takes_wanted
            else self.action_value.estimate(facts, catalogue)
        )
        value = nan_to_num(estimates.value, nan=-np.inf)
        chosen = _best(value, candidate, self._wait)
        if facts.n > 1:
            chosen = self._within_debtor_caps(facts, value, candidate, blocked_by, chosen)
        greedy = chosen.copy()
        epsilon, draws = self._explore(facts)
        if draws is not None:
            chosen, explored, probabilities = explore(greedy, candidate, self._explorable, epsilon, *draws)
        else:
            explored = np.zeros(facts.n, dtype=bool)
            probabilities = np.zeros(candidate.shape)
            probabilities[np.arange(facts.n), greedy] = 1.0
        offers = size_offers(facts, policy.offers, claims.outstanding)
        return Decisions(
            facts=facts,
            workflow=workflow,
            stage=stage,
            eligible=eligible,
            blocked_by=blocked_by,
            estimates=estimates,
            chosen=chosen,
            fallback=~candidate.any(axis=1),
            ranking=_ranking(value, candidate, 1 + RUNNER_UPS),
            claims=claims,
            limitation_day=limitation,
            offers=offers,
            greedy=greedy,
            explored=explored,
            probabilities=probabilities,
            epsilon=epsilon,
            rule_hits=hits if facts.n == 1 else None,
        )

    def _explore(self, facts: Facts) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """Each case's exploration share and its two uniform draws (None when nobody explores).
        A debtor with several cases in the batch is not explored: the caps count across them."""
        exploration = self.policy.exploration
        if not exploration.active:
            return np.zeros(facts.n), None
        epsilon = exploration.epsilons(facts.text("creditor"))
        if facts.n > 1:
            keys = facts.text("debtor_key")
            shared = pd.Series(keys).duplicated(keep=False).to_numpy() & (keys != "")
            epsilon[shared] = 0.0
        return epsilon, uniforms(facts.text("case_id"), facts["decision_ts"], self.policy.version)

    def _stages(self, facts: Facts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each case's workflow, stage and the actions its stage allows."""
        workflow = self.policy.choice.choose(facts)
        stage = np.empty(facts.n, dtype=object)
        allowed = np.zeros((facts.n, len(self.policy.catalogue.actions)), dtype=bool)
        for name in sorted(set(workflow)):
            rows = workflow == name
            definition = self.policy.workflows[name]
            index = definition.stage_of(facts)[rows]
            allowed[rows] = self._allowed[name][index]
            stage[rows] = np.asarray(definition.order, dtype=object)[index]
        return workflow, stage, allowed

    def _within_debtor_caps(
        self, facts: Facts, value: np.ndarray, candidate: np.ndarray, blocked_by: np.ndarray, chosen: np.ndarray
    ) -> np.ndarray:
        """Re-rank the cases that would take a debtor past a cap once the batch is counted."""
        caps = [(k, rule) for k, rule in enumerate(self.policy.guardrails.rules) if rule.cap is not None]
        for _ in range(candidate.shape[1] + 1):  # each round removes an action from some cases
            changed = False
            for k, rule in caps:
                best = value[np.arange(facts.n), chosen]
                over = np.flatnonzero(debtor_overflow(rule, facts, self.policy.catalogue, chosen, best))
                if over.size:
                    blocked_by[over, chosen[over]] = k + 1
                    candidate[over, chosen[over]] = False
                    chosen[over] = _best(value[over], candidate[over], self._wait)
                    changed = True
            if not changed:
                break
        return chosen

    def recommend(self, cases: pd.DataFrame) -> pd.DataFrame:
        """The batch answer: one row per case (``policies.answers.batch_frame``)."""
        from policies.answers import batch_frame

        decisions = self.decide(Facts.from_frame(cases))
        return batch_frame(decisions, self, cases)

    def recommend_one(
        self, case: Mapping[str, Any], *, reasons: tuple[Any, ...] = (), model_versions: Mapping[str, str] | None = None
    ) -> Any:
        """The answer for one case, from a mapping of fact name to value (features, history
        facts, ``p_reach``, ``p_settle``, ``decision_ts`` in epoch seconds, ``case_id`` ...):
        a ``policies.answers.Recommendation``. ``reasons`` are the top reasons behind the scores
        (``policies.scores.ChampionScorer.reasons``)."""
        from policies.answers import single_answer

        return single_answer(self.decide(Facts.from_mapping(case)), self, reasons, dict(model_versions or {}))


def _best(value: np.ndarray, candidate: np.ndarray, fallback: int) -> np.ndarray:
    """Per case, the candidate action of highest value (lowest catalogue index on ties), or
    ``fallback`` when there is none."""
    score = np.where(candidate, value, -np.inf)
    chosen = np.argmax(score, axis=1)
    chosen[~candidate.any(axis=1)] = fallback
    return chosen


def _ranking(value: np.ndarray, candidate: np.ndarray, k: int) -> np.ndarray:
    """Per case, the ``k`` best candidate actions (indices, best first; -1 where fewer)."""
    score = np.where(candidate, value, -np.inf)
    k = min(k, score.shape[1])
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    taken = np.take_along_axis(candidate, order, axis=1)
    return np.where(taken, order, -1)
