"""The learned ``ActionValue``: the action-effect model's P(settle within 90 days | action now), and
the documented prior for every action the model cannot estimate, per action, saying which.

:class:`LearnedValue` wraps a fitted :class:`models.effects.ActionEffects` (the registered
champion, loaded once by :meth:`LearnedValue.champion`, or handed over). ``estimate`` reads the
model's features from the case facts (NaN where a fact is absent), predicts only the actions asked
for (the engine asks for the eligible, unblocked ones), and takes the prior (``PriorValue``) for
actions the model left to it, moved onto the model's scale (shifted by the mean log-odds gap
between model and prior over the case's learned actions, so that a prior action competes with the
learned ones on the same footing): ``source`` names ``action_effects`` or ``prior`` per action. For one
case it also gives each action's 95 % interval (the bootstrap members' spread) and the features
that make one action better than another (:meth:`explain`: the difference of the two actions'
``pred_contrib`` rows, in log-odds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.action_value import ActionEstimates, Effects, PriorValue
from policies.catalogue import Catalogue
from policies.facts import Facts

MODEL_NAME = "action_effects"
TOP_FEATURES = 5


@dataclass(frozen=True)
class FeatureDifference:
    """One feature's part in why the chosen action beats the runner-up for this debtor."""

    feature: str
    value: float | None
    log_odds: float  # contribution to the chosen action's log-odds minus its contribution to the runner-up's


@dataclass(frozen=True)
class Explanation:
    """Why the chosen action and not the runner-up: values, and the features behind the difference."""

    chosen: str
    runner_up: str
    value_difference: float  # CNY
    p_settle_difference: float
    features: tuple[FeatureDifference, ...]
    note: str


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _on_scale(prior: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """The prior's odds moved onto the model's scale, case by case: shifted by the mean log-odds
    difference between the model and the prior over the case's actions the model estimated (the
    prior's shifts stay relative to what the model says current practice achieves); unchanged for a
    case with none."""
    both = np.isfinite(learned)
    gap = np.where(both, _logit(np.where(both, learned, 0.5)) - _logit(prior), 0.0)
    count = both.sum(axis=1)
    delta = np.where(count > 0, gap.sum(axis=1) / np.maximum(count, 1), 0.0)
    return 1.0 / (1.0 + np.exp(-(_logit(prior) + delta[:, None])))


class LearnedValue:
    """Values from the action-effect model; the prior where the model leaves an action to it."""

    name = MODEL_NAME

    def __init__(self, model: Any, effects: Effects, version: str = "unregistered") -> None:
        self.model = model
        self.prior = PriorValue(effects)
        self.version = str(version)
        self.features = [str(f) for f in model.feature_names_in_]

    @classmethod
    def champion(cls, settings: Any, effects: Effects) -> LearnedValue:
        """The registered champion (raises LookupError when there is none)."""
        from training.scoring import champion

        model, version = champion(settings, MODEL_NAME)
        return cls(model, effects, version)

    def inputs(self, facts: Facts) -> np.ndarray:
        """The model's features of every case, float32 (NaN where the facts lack one)."""
        out = np.full((facts.n, len(self.features)), np.nan, dtype=np.float32)
        for j, name in enumerate(self.features):
            if facts.has(name):
                out[:, j] = facts[name]
        return out

    def sources(self, catalogue: Catalogue) -> tuple[str, ...]:
        supported = set(self.model.supported_)
        return tuple(MODEL_NAME if name in supported else "prior" for name in catalogue.names)

    def estimate(self, facts: Facts, catalogue: Catalogue, wanted: np.ndarray | None = None) -> ActionEstimates:
        prior = self.prior.estimate(facts, catalogue)
        if facts.n == 0:
            return ActionEstimates(catalogue.names, prior.p_settle, prior.recovery, prior.cost, self.sources(catalogue))
        learned = self.model.predict_actions(
            self.inputs(facts), catalogue.names, wanted, num_threads=1 if facts.n == 1 else 0
        )
        p_settle = np.where(np.isfinite(learned), learned, _on_scale(prior.p_settle, learned))
        return ActionEstimates(catalogue.names, p_settle, prior.recovery, prior.cost, self.sources(catalogue))

    def intervals(self, facts: Facts, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
        """(cases, actions) low and high ends of each learned estimate's 95 % interval (NaN for
        actions from the prior)."""
        x = self.inputs(facts)
        low = np.full((facts.n, len(catalogue.names)), np.nan)
        high = low.copy()
        for j, name in enumerate(catalogue.names):
            if name in self.model.supported_:
                low[:, j], high[:, j] = self.model.interval(x, name)
        return low, high

    def explain(
        self, facts: Facts, catalogue: Catalogue, estimates: ActionEstimates, chosen: int, runner_up: int
    ) -> Explanation:
        """For the one case of ``facts``: the features that make ``chosen`` better than ``runner_up``."""
        names = catalogue.names
        value = estimates.value[0]
        both = (names[chosen], names[runner_up])
        p = estimates.p_settle[0]
        common: dict[str, Any] = dict(
            chosen=both[0],
            runner_up=both[1],
            value_difference=round(float(value[chosen] - value[runner_up]), 2),
            p_settle_difference=round(float(p[chosen] - p[runner_up]), 6),
        )
        missing = [a for a in both if a not in self.model.supported_]
        if missing:
            return Explanation(
                **common,
                features=(),
                note=f"{' and '.join(missing)} valued by the prior "
                "(effects.yaml), not the model: no feature comparison",
            )
        x = self.inputs(facts)
        a, inputs = self.model.contributions(x, both[0])
        b, _ = self.model.contributions(x, both[1])
        difference = a[0] - b[0]
        values = [*x[0].tolist(), float("nan")]
        order = np.argsort(-np.abs(difference), kind="stable")[:TOP_FEATURES]
        features = tuple(
            FeatureDifference(
                inputs[j], None if np.isnan(values[j]) else round(float(values[j]), 4), round(float(difference[j]), 4)
            )
            for j in order
            if difference[j] != 0
        )
        return Explanation(
            **common,
            features=features,
            note=f"difference of the two actions' SHAP values (pred_contrib, log-odds) in the "
            f"{self.model.method} model; > 0 favours {both[0]}",
        )
