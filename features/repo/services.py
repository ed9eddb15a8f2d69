"""Feast feature services: one per model version. Training reads ``get_historical_features``
and serving ``get_online_features`` of the same service, so the two cannot drift.

Entity rows for both services carry ``case_pk`` (int64), ``debtor_key`` (str, the debtor's
pseudonym, "" when the case has none), ``decision_ts`` (UTC) and, for training,
``event_timestamp`` (UTC): see ``features/store/retrieval.py``.
"""

from __future__ import annotations

from feast import FeatureService, FeatureView, OnDemandFeatureView

REACHABILITY_V1 = "reachability_v1"
SETTLEMENT_V1 = "settlement_v1"

SERVICE_VIEWS: dict[str, tuple[str, ...]] = {
    REACHABILITY_V1: ("contact_repair", "case_state", "case_ages", "litigation", "contact_ages", "litigation_ages"),
    SETTLEMENT_V1: (
        "case_state",
        "repayment_capacity",
        "litigation",
        "case_ages",
        "contact_repair",
        "debt_ratios",
        "contact_ages",
        "capacity_ages",
        "litigation_ages",
    ),
}
_DESCRIPTIONS = {
    REACHABILITY_V1: "Reachability model v1: can the debtor be reached on a working channel soon?",
    SETTLEMENT_V1: "Settlement model v1: will the case settle (agreement or payment)?",
}


def feature_services(views: dict[str, FeatureView | OnDemandFeatureView]) -> dict[str, FeatureService]:
    """The services by name, each over whole feature views (every feature of each)."""
    return {
        name: FeatureService(name=name, features=[views[v] for v in names], description=_DESCRIPTIONS[name])
        for name, names in SERVICE_VIEWS.items()
    }
