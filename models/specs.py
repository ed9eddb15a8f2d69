"""What each Concord model predicts, from which FeatureService, with which domain constraints.

Monotone directions are the ones the domain is sure about (DOMAIN.md): more income or
property never lowers settlement odds; more enforcement terminated for no assets (终本) never
raises them. Features named here must exist in the model's FeatureService; other features of
the service are learnt without constraints.

``params`` are the model's CalibratedOdds settings where they differ from the defaults. Settlement
has few positives (about 5 % of decisions), most of its signal is a sum of weak, noisy
traces of capacity and willingness; small trees on half of the features at a time, with many
rows per leaf and a slower rate, over-fit the noise less (out-of-time AUC +0.005 on a 50,000-case
world, same training time or less).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """A model: its name, label, FeatureService, monotone constraints and fit settings."""

    name: str
    label: str
    feature_service: str
    monotone: dict[str, int] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()  # returned by the service but not model inputs
    params: dict[str, Any] = field(default_factory=dict)  # CalibratedOdds settings; callers may override


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
    params={"num_leaves": 7, "min_child_samples": 400, "colsample_bytree": 0.5, "learning_rate": 0.03,
            "n_estimators": 600},
)

SPECS = {spec.name: spec for spec in (REACHABILITY, SETTLEMENT)}
