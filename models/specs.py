"""What each Concord model predicts, from which FeatureService, with which domain constraints,
and the ranges its settings are searched in.

Monotone directions are the ones the domain is sure about (DOMAIN.md): more income or
property never lowers settlement odds; more enforcement terminated for no assets (终本) never
raises them. Features named here must exist in the model's FeatureService; other features of
the service are learnt without constraints.

No setting is tuned by hand to any one world: ``params`` are where the search starts (its first
trial: LightGBM's usual settings), and :class:`SearchSpace` bounds where it may go. The data
choose, on time-ordered validation (``training.tuning``). ``min_child_share`` is the smallest
leaf as a share of the training rows, so that a setting found on the validation folds means the
same when the model is refitted on every decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

START = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_share": 0.001,
    "colsample_bytree": 0.8,
    "subsample": 0.8,
    "reg_lambda": 1.0,
}


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the hyperparameter search: (low, high); ``log`` names the ones drawn on a log scale."""

    learning_rate: tuple[float, float] = (0.02, 0.3)
    num_leaves: tuple[int, int] = (4, 64)
    min_child_share: tuple[float, float] = (1e-4, 0.03)
    colsample_bytree: tuple[float, float] = (0.3, 1.0)
    subsample: tuple[float, float] = (0.5, 1.0)
    reg_lambda: tuple[float, float] = (1e-3, 30.0)
    log: tuple[str, ...] = ("learning_rate", "num_leaves", "min_child_share", "reg_lambda")


@dataclass(frozen=True)
class ModelSpec:
    """A model: its name, label, FeatureService, monotone constraints and settings."""

    name: str
    label: str
    feature_service: str
    monotone: dict[str, int] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()  # returned by the service but not model inputs
    params: dict[str, Any] = field(default_factory=lambda: dict(START))  # the search's first trial
    search: SearchSpace = field(default_factory=SearchSpace)


REACHABILITY = ModelSpec(
    name="reachability",
    label="reachability",
    feature_service="reachability_v1",
)

SETTLEMENT = ModelSpec(
    name="settlement",
    label="settlement",
    feature_service="settlement_v1",
    monotone={"monthly_income": 1, "has_property": 1, "terminated_no_assets": -1},
)

SPECS = {spec.name: spec for spec in (REACHABILITY, SETTLEMENT)}
