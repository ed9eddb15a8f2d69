"""Concord's Feast feature repository, declared in small files by concern.

- ``entities.py``: debtor (``debtor_key``), case (``case_pk``), mediator (``mediator_id``);
- ``sources.py``: FileSources over the offline parquet tables, the ``decision_ts`` request source;
- ``views.py``: one feature view per concern plus the on-demand ages (``case_ages``, ...) and ``debt_ratios``;
- ``services.py``: one FeatureService per model (``reachability_v1``, ``settlement_v1``).

Definitions are built by functions given the Settings (paths under ``CONCORD_HOME``); nothing
is created or bound at import. ``features/store/config.py`` applies them.
"""

from __future__ import annotations

from typing import Any

from concord.settings import Settings
from features.repo.entities import all_entities
from features.repo.services import REACHABILITY_V1, SERVICE_VIEWS, SETTLEMENT_V1, feature_services
from features.repo.sources import DECISION_TS
from features.repo.views import feature_views

__all__ = ["DECISION_TS", "REACHABILITY_V1", "SERVICE_VIEWS", "SETTLEMENT_V1", "definitions"]


def definitions(settings: Settings) -> list[Any]:
    """Every Feast object of the repository: entities, views, services (Feast registers the
    views' sources with them)."""
    views = feature_views(settings)
    return [
        *all_entities().values(),
        *views.values(),
        *feature_services(views).values(),
    ]
