"""Feast data sources: the offline parquet tables that ``features/offline/build.py`` writes, and the
request-time input of the on-demand view.

Paths are absolute, under ``settings.home / "features" / "offline"``; nothing is bound at import.
"""

from __future__ import annotations

from feast import Field, FileSource, RequestSource
from feast.types import UnixTimestamp

from concord.settings import Settings
from features.offline.build import offline_path
from features.offline.schemas import TABLE_NAMES, TIMESTAMP_FIELD

DECISION_TS = "decision_ts"


def offline_source(settings: Settings, table: str) -> FileSource:
    """FileSource over one offline table (``contact_repair``, ``case_state``, ...)."""
    return FileSource(
        name=f"{table}_source",
        path=str(offline_path(settings, table)),
        timestamp_field=TIMESTAMP_FIELD,
        description=f"features/offline/build.py offline table {table}: one row per entity and change point; "
        f"{TIMESTAMP_FIELD} = when the values became known (UTC).",
    )


def offline_sources(settings: Settings) -> dict[str, FileSource]:
    """Every offline table's FileSource, by table name."""
    return {table: offline_source(settings, table) for table in TABLE_NAMES}


def decision_request() -> RequestSource:
    """The request-time input: ``decision_ts``, the moment (UTC) the decision is taken.

    Training passes it as a column of the entity DataFrame (usually equal to
    ``event_timestamp``); serving passes it in each entity row.
    """
    return RequestSource(
        name="decision_request",
        schema=[
            Field(
                name=DECISION_TS,
                dtype=UnixTimestamp,
                description="When the decision is taken (UTC); ages are measured up to it.",
            )
        ],
        description="Request-time data for the case_ages on-demand view.",
    )
