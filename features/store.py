"""Concord's Feast feature store: configuration, apply, materialise, training and serving reads.

Everything lives under ``CONCORD_HOME/features``::

    features/registry.db             Feast registry (file registry)
    features/online.db               SQLite online store (when CONCORD_REDIS_URL is unset)
    features/offline/*.parquet       offline tables written by features/build.py
    features/offline/manifest.json   when they were built, and as of when
    features/duckdb-spill/           where the offline store's DuckDB engine spills a join
    features/repo/feature_store.yaml the same configuration, for the `feast` CLI

The configuration is built in code from the Settings (:func:`repo_config`); the YAML file only
mirrors it so that ``feast -c $CONCORD_HOME/features/repo feature-views list`` and friends can
inspect the registry. Definitions are applied with :func:`apply` (``concord features apply``),
never with ``feast apply`` (that folder holds no definitions, so ``feast apply`` there would
delete them).

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
import json
import os
import time
import warnings
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from feast import FeatureService, FeatureStore, FeatureView, FileSource, RepoConfig
from feast.types import Float32, Float64

from concord.settings import Settings
from features.build import TIMESTAMP_FIELD, last_per_entity, latest_path, offline_dir
from features.online_write import OnlineWriter
from features.repo import DECISION_TS, definitions

DEFAULT_PROJECT = "concord"
ENTITY_COLUMNS = ("case_pk", "debtor_key")
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # first materialisation starts here
ONLINE_WRITE_BATCH = 10_000  # entities per online-store write during materialisation
HISTORICAL_BATCH_ROWS = 200_000  # entity rows per get_historical_features call (bounds the join)
_TS = pa.timestamp("us", tz="UTC")


def features_dir(settings: Settings) -> Path:
    """``CONCORD_HOME/features``: registry, SQLite online store, offline tables, repo folder."""
    return settings.home / "features"


def repo_dir(settings: Settings) -> Path:
    """``CONCORD_HOME/features/repo``: where ``feature_store.yaml`` is written for the CLI."""
    return features_dir(settings) / "repo"


def manifest_path(settings: Settings) -> Path:
    """JSON written by ``features/build.py``: the ``as_of`` of the offline tables."""
    return offline_dir(settings) / "manifest.json"


def redis_connection_string(url: str) -> str:
    """Feast's Redis connection string (``host:port,db=0,password=...,ssl=true``) from a
    ``redis://`` or ``rediss://`` URL as in ``CONCORD_REDIS_URL``; a Feast-style string is
    returned unchanged."""
    if "://" not in url:
        return url
    parsed = urlparse(url)
    parts = [f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"]
    database = (parsed.path or "/").strip("/") or parse_qs(parsed.query).get("db", [""])[0]
    if database:
        parts.append(f"db={int(database)}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def store_config(settings: Settings, project: str = DEFAULT_PROJECT, *, bulk: bool = False) -> dict[str, Any]:
    """The feature store configuration as plain data (what ``feature_store.yaml`` holds).

    Project ``concord`` by default (tests sharing one Redis pass their own); file registry and
    DuckDB offline store (over the parquet tables) under ``CONCORD_HOME/features``, the engine
    configured by :func:`configure_offline_engine`; online store SQLite, or Redis
    when ``settings.redis_url`` is set. ``bulk``: the configuration :func:`materialize` writes
    with: Feast's SQLite or Redis store with a bulk writer (same keys and values; on Redis no
    per-entity timestamp read, as every row it writes is newer than what is stored: see
    ``features/online_write.py``).
    """
    home = features_dir(settings)
    if settings.redis_url:
        online: dict[str, Any] = {"type": "redis", "connection_string": redis_connection_string(settings.redis_url)}
        if bulk:
            online["type"] = "features.online_write.BulkRedisOnlineStore"
    else:
        online = {"type": "features.online_write.BulkSqliteOnlineStore" if bulk else "sqlite",
                  "path": str(home / "online.db")}
    return {
        "project": project,
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(home / "registry.db"), "cache_ttl_seconds": 60},
        "online_store": online,
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
        "materialization": {"online_write_batch_size": ONLINE_WRITE_BATCH},
    }


def repo_config(settings: Settings, project: str = DEFAULT_PROJECT, *, bulk: bool = False) -> RepoConfig:
    """Feast RepoConfig of :func:`store_config`."""
    return RepoConfig(repo_path=repo_dir(settings), **store_config(settings, project, bulk=bulk))


def write_feature_store_yaml(settings: Settings, project: str = DEFAULT_PROJECT) -> Path:
    """Write ``CONCORD_HOME/features/repo/feature_store.yaml`` mirroring the configuration."""
    folder = repo_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feature_store.yaml"
    text = ("# Written by features/store.py from the Concord settings, for the `feast` CLI to inspect.\n"
            "# Apply definitions with `concord features apply`, not `feast apply`.\n"
            + yaml.safe_dump(store_config(settings, project), sort_keys=False))
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(0o600)  # a Redis URL may carry a password
    return path


_offline_engine: dict[str, Any] | None = None  # the DuckDB configuration ibis' default backend has


def configure_offline_engine(settings: Settings) -> None:
    """Give Feast's DuckDB offline store an engine with Concord's memory limit and spill folder.

    Feast's DuckDB store reads the parquet sources and runs the point-in-time join through
    ibis' default backend, a DuckDB connection of this process. DuckDB joins out of core: past
    ``settings.offline_memory_limit`` it spills to ``CONCORD_HOME/features/duckdb-spill``, so
    training-set size is bounded by disk, not memory. A new connection is made only when the
    configuration changes.

    Raises:
        ValueError: ``CONCORD_OFFLINE_MEMORY_LIMIT`` is not a size DuckDB understands.
    """
    global _offline_engine
    import duckdb
    import ibis

    spill = features_dir(settings) / "duckdb-spill"
    wanted = {"memory_limit": settings.offline_memory_limit, "temp_directory": str(spill),
              "threads": settings.offline_threads or os.cpu_count() or 1}
    if wanted == _offline_engine:
        return
    try:
        backend = ibis.duckdb.connect(**wanted)
    except duckdb.Error as exc:
        raise ValueError(f"CONCORD_OFFLINE_MEMORY_LIMIT={settings.offline_memory_limit!r} or "
                         f"CONCORD_OFFLINE_THREADS={settings.offline_threads!r} is not accepted by DuckDB: "
                         f"{exc}") from exc
    spill.mkdir(parents=True, exist_ok=True)
    ibis.set_backend(backend)
    # ibis 12 calls DuckDB 2's deprecated fetch_arrow_table(); nothing for a Concord user to act on.
    warnings.filterwarnings("ignore", message="fetch_arrow_table", category=DeprecationWarning)
    _offline_engine = wanted


def feature_store(settings: Settings, project: str = DEFAULT_PROJECT) -> FeatureStore:
    """The Feast FeatureStore of these settings (writes ``feature_store.yaml`` alongside)."""
    write_feature_store_yaml(settings, project)
    return FeatureStore(repo_path=str(repo_dir(settings)), config=repo_config(settings, project))


def apply(settings: Settings, project: str = DEFAULT_PROJECT, *, store: FeatureStore | None = None) -> list[str]:
    """Register the repository's entities, views and services (``features/repo``); returns
    the names applied. Idempotent."""
    store = store or feature_store(settings, project)
    objects = definitions(settings)
    with warnings.catch_warnings():
        # Feast warns on every apply that on-demand views are experimental; case_ages is vectorised.
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
        store.apply(objects)
    return [obj.name for obj in objects]


def built_as_of(settings: Settings) -> dt.datetime | None:
    """The ``as_of`` of the offline tables (from the build manifest), or None if never built."""
    path = manifest_path(settings)
    if not path.exists():
        return None
    return dt.datetime.fromisoformat(json.loads(path.read_text())["as_of"])


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class Materialized:
    """What :func:`materialize` did for one feature view."""

    start: dt.datetime  # exclusive, UTC
    end: dt.datetime  # inclusive, UTC
    entities: int  # entities written to the online store
    seconds: float


def latest_rows(path: Path, entity: str, start: dt.datetime, end: dt.datetime,
                batch_rows: int = 1_000_000) -> pa.Table:
    """The last row (by ``event_timestamp``) of every entity with a row in (start, end], read
    from an offline parquet table batch by batch: memory stays about one batch plus one row
    per entity."""
    file = pq.ParquetFile(path)
    low, high = pa.scalar(_utc(start), type=_TS), pa.scalar(_utc(end), type=_TS)
    best: pa.Table | None = None
    for batch in file.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([batch])
        stamps = table[TIMESTAMP_FIELD]
        table = table.filter(pc.and_(pc.greater(stamps, low), pc.less_equal(stamps, high)))
        if table.num_rows:
            best = last_per_entity(table if best is None else pa.concat_tables([best, table]), entity)
    return best if best is not None else file.schema_arrow.empty_table()


def materialize(settings: Settings, end: dt.datetime | None = None, project: str = DEFAULT_PROJECT, *,
                store: FeatureStore | None = None, workers: int | None = None) -> dict[str, Materialized]:
    """Load the online store incrementally: for each stored view, the latest row per entity
    among those stamped after its last materialised end (or 2000-01-01) up to ``end``
    (default now); then record the interval in the registry, as ``feast materialize`` does.

    ``end`` is capped at the offline tables' ``as_of``: rows known later are not in them yet,
    and materialising past it would make the next incremental run skip them.

    Only each entity's latest row is read and written: from the build's ``.latest`` table when
    ``end`` reaches the build's ``as_of``, else streamed from the whole table. Feast's own
    file-store materialisation loads every row of the interval through Dask, which at 200,000
    cases took 338 s and 15 GB for ``case_state`` alone (see FEATURES.md). The rows are written
    by ``features/online_write.py``, in ``workers`` processes (default: one per CPU) for large
    views on Redis.

    Raises:
        FileNotFoundError: the offline tables were never built.
    """
    store = store or feature_store(settings, project)
    as_of = built_as_of(settings)
    if as_of is None:
        raise FileNotFoundError("The offline feature tables were never built; run `concord features build` first.")
    end_utc = min(_utc(end), _utc(as_of))
    bulk = FeatureStore(repo_path=str(repo_dir(settings)), config=repo_config(settings, store.project, bulk=True))
    done: dict[str, Materialized] = {}
    with OnlineWriter(bulk, features_dir(settings) / "materializing", workers) as writer:
        for view in store.list_feature_views():
            # Up to the build's as_of, each entity's last row is in the build's .latest table.
            companion = latest_path(settings, view.name) if end_utc == _utc(as_of) else None
            if (run := _materialize_view(store, writer, view, end_utc, companion)) is not None:
                done[view.name] = run
    return done


def _materialize_view(store: FeatureStore, writer: OnlineWriter, view: FeatureView, end_utc: dt.datetime,
                      companion: Path | None) -> Materialized | None:
    start = _utc(view.most_recent_end_time) if view.most_recent_end_time else EARLIEST
    if start >= end_utc:
        return None
    source = view.batch_source
    if not isinstance(source, FileSource):  # not one of ours: leave it to `feast materialize`
        return None
    started = time.perf_counter()
    if companion is not None and companion.exists():
        latest = pq.read_table(companion)
        latest = latest.filter(pc.greater(latest[TIMESTAMP_FIELD], pa.scalar(start, type=_TS)))
    else:
        latest = latest_rows(Path(source.path), view.join_keys[0], start, end_utc)
    if latest.num_rows:
        writer.write(view, latest)
    store.registry.apply_materialization(view, store.project, start, end_utc, commit=True)
    return Materialized(start, end_utc, latest.num_rows, round(time.perf_counter() - started, 2))


_SERVICES: weakref.WeakKeyDictionary[FeatureStore, dict[str, tuple[object, FeatureService]]] = (
    weakref.WeakKeyDictionary())


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
        raise ValueError(f"The entity DataFrame lacks column(s) {', '.join(missing)}; it needs case_pk, "
                         f"debtor_key, event_timestamp and optionally decision_ts.")
    frame = pd.DataFrame({
        "case_pk": entity_df["case_pk"].astype("int64").to_numpy(),
        "debtor_key": entity_df["debtor_key"].fillna("").astype(str).to_numpy(),
    })
    frame[TIMESTAMP_FIELD] = _timestamps(entity_df[TIMESTAMP_FIELD]).reset_index(drop=True)
    if DECISION_TS in entity_df.columns:
        decision = _timestamps(entity_df[DECISION_TS]).reset_index(drop=True)
        frame[DECISION_TS] = decision.fillna(frame[TIMESTAMP_FIELD])
    else:
        frame[DECISION_TS] = frame[TIMESTAMP_FIELD]
    return frame


def historical_features(settings: Settings, entity_df: pd.DataFrame, service_name: str,
                        project: str = DEFAULT_PROJECT, *, store: FeatureStore | None = None) -> pd.DataFrame:
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
            batch = round_rows.iloc[start:start + HISTORICAL_BATCH_ROWS]
            parts.append(store.get_historical_features(entity_df=batch, features=service).to_df())
    # An on-demand feature (python mode) missing in every row of a batch comes back as a column
    # of None (object): give each declared float feature its float dtype in every batch, so the
    # result's types do not depend on how the rows were batched.
    floats = {f.name for p in service.feature_view_projections for f in p.features if f.dtype in (Float32, Float64)}
    parts = [part.astype({c: "float64" for c in part.columns if c in floats and part[c].dtype == object})
             for part in parts]
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
        rows.append({"case_pk": int(row["case_pk"]), "debtor_key": row.get("debtor_key") or "",
                     DECISION_TS: _utc(decision)})
    return rows


def online_features(settings: Settings, entity_rows: Sequence[dict[str, Any]], service_name: str,
                    project: str = DEFAULT_PROJECT, *, store: FeatureStore | None = None) -> dict[str, list[Any]]:
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
                    bindparam("ids", expanding=True))
                frame = pd.read_sql_query(query, conn, params={"ids": [int(pk) for pk in case_pks]})
    finally:
        if own:
            engine.dispose()
    frame["case_pk"] = frame["case_pk"].astype("int64")
    frame["debtor_key"] = frame["debtor_key"].fillna("").astype(str)
    return frame
