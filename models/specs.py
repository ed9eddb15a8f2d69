"""What each Concord model predicts, from which FeatureService, with which domain constraints.

Monotone directions are the ones the domain is sure about (DOMAIN.md): more income or
property never lowers settlement odds; more enforcement terminated for no assets (终本) never
raises them. Features named here must exist in the model's FeatureService; other features of
the service are learnt without constraints.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    """A model: its name, label, FeatureService and monotone constraints."""

    name: str
    label: str
    feature_service: str
    monotone: dict[str, int] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()  # returned by the service but not model inputs


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
