"""Feast feature views, one per concern, and the on-demand view of request-time ages.

The stored views mirror the offline tables of ``features/offline/schemas.py`` column for column
(the column lists there are the single source of the schemas). ``features/FEATURES.md`` documents
every feature.

TTL is zero (no expiry): a debtor's latest capacity snapshot stays its latest however old;
how old it is is itself a feature (``capacity_as_of_ts``).
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from types import FunctionType
from typing import Any, cast

import pyarrow as pa
from feast import Entity, FeatureView, Field, FileSource, OnDemandFeatureView, RequestSource
from feast.types import FeastType, Float64, Int32, Int64, String

from concord.settings import Settings
from features.offline import schemas
from features.repo.entities import all_entities
from features.repo.sources import decision_request, offline_sources

_ARROW_TO_FEAST: dict[pa.DataType, FeastType] = {
    pa.int32(): Int32,
    pa.int64(): Int64,
    pa.float64(): Float64,
    pa.string(): String,
}

# view name -> (entity name, column list, description)
_STORED = {
    "contact_repair": (
        "debtor",
        schemas.contact_repair_columns,
        "Phone-status checks and lost-contact repairs of the debtor, cumulative.",
    ),
    "repayment_capacity": (
        "debtor",
        schemas.repayment_capacity_columns,
        "The debtor's latest known repayment-capacity snapshot.",
    ),
    "litigation": ("debtor", schemas.litigation_columns, "The debtor's latest known court-data snapshot."),
    "case_state": (
        "case",
        schemas.case_state_columns,
        "Amounts, creditor, product, stage and contact history (by channel, 1/7/30 days) of the case.",
    ),
    "mediator_performance": (
        "mediator",
        schemas.mediator_performance_columns,
        "Cases worked, reached and settled by the mediator, cumulative and last 30 days.",
    ),
}


def age_name(column: str) -> str:
    """The age feature of an epoch timestamp: ``overdue_since_ts`` -> ``days_past_due``, any
    other ``X_ts`` -> ``days_since_X`` (the rule :func:`ages` applies)."""
    return "days_past_due" if column == "overdue_since_ts" else "days_since_" + column.removesuffix("_ts")


# on-demand age view -> (stored view, its epoch timestamps whose age at decision_ts is a feature)
AGE_VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "case_ages": (
        "case_state",
        ("overdue_since_ts", "last_reached_ts", "last_attempt_ts", "first_event_ts", "last_settled_ts"),
    ),
    "contact_ages": ("contact_repair", ("last_check_ts", "last_repair_ts")),
    "capacity_ages": ("repayment_capacity", ("capacity_as_of_ts",)),
    "litigation_ages": ("litigation", ("litigation_as_of_ts",)),
}


RATIO_INPUTS = {
    "case_state": ("total_claim", "paid_amount_total"),
    "repayment_capacity": ("monthly_income", "other_debt"),
}
RATIO_FEATURES = ("paid_share", "claim_to_income", "other_debt_to_claim")


def stored_view(name: str, source: FileSource, entities: dict[str, Entity]) -> FeatureView:
    """One stored feature view over its offline table."""
    entity, columns, description = _STORED[name]
    return FeatureView(
        name=name,
        entities=[entities[entity]],
        ttl=timedelta(0),
        schema=[Field(name=column, dtype=_ARROW_TO_FEAST[kind]) for column, kind in columns()],
        source=source,
        online=True,
        description=description,
    )


def ages(inputs: dict[str, list[Any]]) -> dict[str, list[float | None]]:
    """For every epoch-timestamp input ``X_ts`` (other than ``decision_ts``) its age in days at
    the request's ``decision_ts``, named by :func:`age_name` (None when unknown).

    Models learn from ages, not from absolute times: a time seen only in the past during
    training means nothing on later decisions. Feast's python mode: columns as lists in, lists
    out; the same function serves training (``get_historical_features``) and serving
    (``get_online_features``). Feast stores this source and re-executes it, so it imports what
    it needs itself and repeats :func:`age_name`'s rule.
    """
    import datetime as _dt
    import math as _math

    def seconds(value: Any) -> float | None:
        """Epoch seconds of a timestamp, an epoch number, or None."""
        if value is None:
            return None
        if isinstance(value, _dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=_dt.UTC)).timestamp()
        number = float(value)
        return None if _math.isnan(number) else number

    now = [seconds(v) for v in inputs["decision_ts"]]
    out: dict[str, list[float | None]] = {}
    for source, values in inputs.items():
        if source == "decision_ts" or not source.endswith("_ts"):
            continue
        then = (seconds(v) for v in values)
        name = "days_past_due" if source == "overdue_since_ts" else "days_since_" + source[: -len("_ts")]
        out[name] = [None if t is None or s is None else (t - s) / 86400.0 for t, s in zip(now, then, strict=True)]
    return out


def ages_view(name: str, view: FeatureView, request: RequestSource) -> OnDemandFeatureView:
    """On-demand view ``name`` of ``AGE_VIEWS``: :func:`ages` of the view's timestamps at the
    request's ``decision_ts``, in training (``get_historical_features``) and serving
    (``get_online_features``) alike. ``case_ages``: days past due, since the debtor was last
    reached, since the last contact attempt, since the case's first event (how long it has been
    worked) and since its last agreement or payment.

    Python mode rather than pandas: an online read of one case costs about 2.5 ms of transform
    instead of about 9 ms (pandas mode converts the whole response to a DataFrame), for about
    15 % more time in offline retrieval.
    """
    _, inputs = AGE_VIEWS[name]
    return OnDemandFeatureView(
        name=name,
        entities=[],
        sources=[view[list(inputs)], request],
        schema=[Field(name=age_name(column), dtype=Float64) for column in inputs],
        udf=cast(FunctionType, ages),
        udf_string=inspect.getsource(ages),
        mode="python",
        description=f"Days at decision_ts since {', '.join(inputs)} of {view.name}.",
    )


def debt_ratios(inputs: dict[str, list[Any]]) -> dict[str, list[float | None]]:
    """The claim set against what the debtor has paid, earns and owes elsewhere: share of the
    claim paid so far, the claim in months of income, other debt as a multiple of the claim
    (None where an input is missing or the divisor is not positive).

    Feast's python mode, like :func:`ages`; it imports what it needs itself.
    """
    import math as _math

    def number(value: Any) -> float | None:
        if value is None:
            return None
        number = float(value)
        return None if _math.isnan(number) else number

    def ratio(top: Any, bottom: Any) -> float | None:
        t, b = number(top), number(bottom)
        return None if t is None or b is None or b <= 0 else t / b

    claims, paid = inputs["total_claim"], inputs["paid_amount_total"]
    income, other = inputs["monthly_income"], inputs["other_debt"]
    return {
        "paid_share": [ratio(p, c) for p, c in zip(paid, claims, strict=True)],
        "claim_to_income": [ratio(c, i) for c, i in zip(claims, income, strict=True)],
        "other_debt_to_claim": [ratio(o, c) for o, c in zip(other, claims, strict=True)],
    }


def debt_ratios_view(case_state: FeatureView, capacity: FeatureView) -> OnDemandFeatureView:
    """On-demand view computing :func:`debt_ratios` from ``case_state`` (a case) and
    ``repayment_capacity`` (its debtor), in training and serving alike."""
    return OnDemandFeatureView(
        name="debt_ratios",
        entities=[],
        sources=[case_state[list(RATIO_INPUTS["case_state"])], capacity[list(RATIO_INPUTS["repayment_capacity"])]],
        schema=[Field(name=name, dtype=Float64) for name in RATIO_FEATURES],
        udf=cast(FunctionType, debt_ratios),
        udf_string=inspect.getsource(debt_ratios),
        mode="python",
        description="Share of the claim paid, claim in months of income, other debt per unit of claim.",
    )


def feature_views(settings: Settings) -> dict[str, FeatureView | OnDemandFeatureView]:
    """All feature views by name: the five stored ones, the ages of ``AGE_VIEWS`` and
    ``debt_ratios``."""
    entities = all_entities()
    sources = offline_sources(settings)
    views: dict[str, FeatureView | OnDemandFeatureView] = {
        name: stored_view(name, sources[name], entities) for name in _STORED
    }
    stored = {name: view for name, view in views.items() if isinstance(view, FeatureView)}
    for name, (source, _) in AGE_VIEWS.items():
        views[name] = ages_view(name, stored[source], decision_request())
    views["debt_ratios"] = debt_ratios_view(stored["case_state"], stored["repayment_capacity"])
    return views
