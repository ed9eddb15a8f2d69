"""Reading features: point-in-time training sets (``historical_features``), serving reads
(``online_features``), entity rows from the ledger (``case_entities``) and feature services.

Entity rows (both services, training and serving):

========================  ===========================================================
``case_pk``               int64, the ledger's ``cases.id``
``debtor_key``            str, the debtor's pseudonym (``cases.debtor_key``; "" if none)
``event_timestamp``       UTC timestamp, training only: features known at that moment
``decision_ts``           UTC timestamp, when the decision is taken (default: training
                          ``event_timestamp``, serving now); the on-demand ages use it
========================  ===========================================================
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from feast import FeatureService, FeatureStore
from feast.types import Float32, Float64

from concord.settings import Settings
from features.offline.asof import utc
from features.offline.schemas import TIMESTAMP_FIELD
from features.repo import DECISION_TS
from features.store.config import DEFAULT_PROJECT, configure_offline_engine, feature_store

ENTITY_COLUMNS = ("case_pk", "debtor_key")
HISTORICAL_BATCH_ROWS = 200_000  # entity rows per get_historical_features call (bounds the join)


_SERVICES: weakref.WeakKeyDictionary[FeatureStore, dict[str, tuple[object, FeatureService]]] = (
    weakref.WeakKeyDictionary()
)


def feature_service(store: FeatureStore, name: str) -> FeatureService:
    """The FeatureService ``name`` from the store's cached registry.

    Kept per store until the registry cache refreshes: Feast rebuilds the object from its proto
    on every ``get_feature_service`` call (tens of ms for a service of ~90 features), which
    would dominate an online read.
    """
    stamp = getattr(store.registry, "cached_registry_proto_created", None)
    cached = _SERVICES.setdefault(store, {}).get(name)
    if cached is None or cached[0] != stamp or stamp is None:
        service = store.get_feature_service(name, allow_cache=True)
        stamp = getattr(store.registry, "cached_registry_proto_created", None)
        _SERVICES[store][name] = (stamp, service)
        return service
    return cached[1]


def _timestamps(values: pd.Series) -> pd.Series:
    """UTC timestamps at nanosecond resolution (naive input is UTC)."""
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def normalise_entity_df(entity_df: pd.DataFrame) -> pd.DataFrame:
    """The entity DataFrame in the shape Feast needs: ``case_pk`` int64, ``debtor_key`` str,
    ``event_timestamp`` and ``decision_ts`` UTC (``decision_ts`` defaults to the event time).

    Raises:
        ValueError: a required column is missing.
    """
    missing = [c for c in (*ENTITY_COLUMNS, TIMESTAMP_FIELD) if c not in entity_df.columns]
    if missing:
        raise ValueError(
            f"The entity DataFrame lacks column(s) {', '.join(missing)}; it needs case_pk, "
            f"debtor_key, event_timestamp and optionally decision_ts."
        )
    frame = pd.DataFrame(
        {
            "case_pk": entity_df["case_pk"].astype("int64").to_numpy(),
            "debtor_key": entity_df["debtor_key"].fillna("").astype(str).to_numpy(),
        }
    )
    frame[TIMESTAMP_FIELD] = _timestamps(entity_df[TIMESTAMP_FIELD]).reset_index(drop=True)
    if DECISION_TS in entity_df.columns:
        decision = _timestamps(entity_df[DECISION_TS]).reset_index(drop=True)
        frame[DECISION_TS] = decision.fillna(frame[TIMESTAMP_FIELD])
    else:
        frame[DECISION_TS] = frame[TIMESTAMP_FIELD]
    return frame


def historical_features(
    settings: Settings,
    entity_df: pd.DataFrame,
    service_name: str,
    project: str = DEFAULT_PROJECT,
    *,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """Point-in-time training features of a FeatureService for every entity row.

    ``entity_df`` has ``case_pk``, ``debtor_key``, ``event_timestamp`` and optionally
    ``decision_ts`` (see the module docstring); other columns (labels, ids) are carried
    through. Returns one row per entity row, in the same order and with the same index: the
    four entity columns, the other columns, then the service's features, each as known at
    ``event_timestamp``, with the ages measured at ``decision_ts``.
    """
    store = store or feature_store(settings, project)
    configure_offline_engine(settings)  # only offline retrieval needs DuckDB; serving never starts it
    service = feature_service(store, service_name)
    frame = normalise_entity_df(entity_df)
    keys = [*ENTITY_COLUMNS, TIMESTAMP_FIELD, DECISION_TS]
    # Feast keeps one row per (join keys, event_timestamp): ask for each distinct row once, and
    # for rows differing only in decision_ts, in separate rounds.
    row_id = frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    unique = frame.assign(_row=row_id).drop_duplicates("_row")
    rounds = unique.groupby([*ENTITY_COLUMNS, TIMESTAMP_FIELD], sort=False).cumcount()
    parts = []
    for number in range(int(rounds.max()) + 1 if len(unique) else 0):
        round_rows = unique.loc[rounds == number].sort_values("case_pk", kind="stable")
        # Batches of neighbouring cases: the join's memory grows with entity rows x feature rows
        # per entity, and DuckDB skips the row groups (written in case order) outside a batch.
        for start in range(0, len(round_rows), HISTORICAL_BATCH_ROWS):
            batch = round_rows.iloc[start : start + HISTORICAL_BATCH_ROWS]
            parts.append(store.get_historical_features(entity_df=batch, features=service).to_df())
    # An on-demand feature (python mode) missing in every row of a batch comes back as a column
    # of None (object): give each declared float feature its float dtype in every batch, so the
    # result's types do not depend on how the rows were batched.
    floats = {f.name for p in service.feature_view_projections for f in p.features if f.dtype in (Float32, Float64)}
    parts = [
        part.astype({c: "float64" for c in part.columns if c in floats and part[c].dtype == object}) for part in parts
    ]
    carried = entity_df[[c for c in entity_df.columns if c not in keys]].reset_index(drop=True)
    if not parts:
        out = pd.concat([frame, carried], axis=1)
        out.index = entity_df.index
        return out
    result = pd.concat(parts, ignore_index=True).set_index("_row")
    # reindex, not loc: a row Feast did not return comes back with every feature missing
    result = result.reindex(row_id).reset_index(drop=True)
    feature_columns = [c for c in result.columns if c not in keys and c not in carried.columns]
    out = pd.concat([frame.reset_index(drop=True), carried, result[feature_columns]], axis=1)
    out.index = entity_df.index
    return out


def online_entity_rows(entity_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entity rows for serving: ``case_pk`` int, ``debtor_key`` str ("" if missing) and
    ``decision_ts`` (aware UTC datetime; default now)."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for row in entity_rows:
        decision = row.get(DECISION_TS)
        if decision is None:
            decision = now
        elif isinstance(decision, (int, float)):
            decision = dt.datetime.fromtimestamp(decision, dt.UTC)
        elif not isinstance(decision, dt.datetime):
            decision = pd.Timestamp(decision).to_pydatetime()
        rows.append(
            {"case_pk": int(row["case_pk"]), "debtor_key": row.get("debtor_key") or "", DECISION_TS: utc(decision)}
        )
    return rows


def online_features(
    settings: Settings,
    entity_rows: Sequence[dict[str, Any]],
    service_name: str,
    project: str = DEFAULT_PROJECT,
    *,
    store: FeatureStore | None = None,
) -> dict[str, list[Any]]:
    """Serving features of a FeatureService: a dict of column name -> list (one value per
    entity row, None where unknown), entity columns included.

    Pass a long-lived ``store`` (:func:`feature_store`) when serving: building one loads the
    registry.
    """
    store = store or feature_store(settings, project)
    service = feature_service(store, service_name)
    response = store.get_online_features(features=service, entity_rows=online_entity_rows(entity_rows))
    return response.to_dict()


def case_entities(settings: Settings, case_pks: Sequence[int] | None = None, *, engine: Any = None) -> pd.DataFrame:
    """``case_pk`` and ``debtor_key`` of the given cases (all cases when None), from the ledger:
    the entity columns for :func:`historical_features` and :func:`online_features`."""
    from sqlalchemy import bindparam, text

    from concord.db import make_engine

    own = engine is None
    engine = engine or make_engine(settings)
    try:
        with engine.connect() as conn:
            if case_pks is None:
                frame = pd.read_sql_query(text("SELECT id AS case_pk, debtor_key FROM cases ORDER BY id"), conn)
            else:
                query = text("SELECT id AS case_pk, debtor_key FROM cases WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                )
                frame = pd.read_sql_query(query, conn, params={"ids": [int(pk) for pk in case_pks]})
    finally:
        if own:
            engine.dispose()
    frame["case_pk"] = frame["case_pk"].astype("int64")
    frame["debtor_key"] = frame["debtor_key"].fillna("").astype(str)
    return frame
