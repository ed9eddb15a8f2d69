"""The feature store's configuration and Feast ``FeatureStore``: paths under ``CONCORD_HOME/features``,
``store_config``/``repo_config``, ``feature_store.yaml``, the DuckDB offline engine, ``apply``.

Everything lives under ``CONCORD_HOME/features``::

    features/registry.db             Feast registry (file registry)
    features/online.db               SQLite online store (when CONCORD_REDIS_URL is unset)
    features/offline/*.parquet       offline tables written by features/offline/build.py
    features/offline/manifest.json   when they were built, and as of when
    features/duckdb-spill/           where the offline store's DuckDB engine spills a join
    features/repo/feature_store.yaml the same configuration, for the `feast` CLI

The configuration is built in code from the Settings (:func:`repo_config`); the YAML file only
mirrors it so that ``feast -c $CONCORD_HOME/features/repo feature-views list`` and friends can
inspect the registry. Definitions are applied with :func:`apply` (``concord features apply``),
never with ``feast apply`` (that folder holds no definitions, so ``feast apply`` there would
delete them).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml
from feast import FeatureStore, RepoConfig

from concord.settings import Settings
from features.repo import definitions

DEFAULT_PROJECT = "concord"
ONLINE_WRITE_BATCH = 10_000  # entities per online-store write during materialisation


def features_dir(settings: Settings) -> Path:
    """``CONCORD_HOME/features``: registry, SQLite online store, offline tables, repo folder."""
    return settings.home / "features"


def repo_dir(settings: Settings) -> Path:
    """``CONCORD_HOME/features/repo``: where ``feature_store.yaml`` is written for the CLI."""
    return features_dir(settings) / "repo"


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


def store_config(
    settings: Settings, project: str = DEFAULT_PROJECT, *, bulk: bool = False, serving: bool = False
) -> dict[str, Any]:
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
        online = {
            "type": "features.online_write.BulkSqliteOnlineStore" if bulk else "sqlite",
            "path": str(home / "online.db"),
        }
    return {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(home / "registry.db"),
            "cache_ttl_seconds": 60,
            **({"cache_mode": "thread"} if serving else {}),
        },
        "online_store": online,
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
        "materialization": {"online_write_batch_size": ONLINE_WRITE_BATCH},
    }


def repo_config(
    settings: Settings, project: str = DEFAULT_PROJECT, *, bulk: bool = False, serving: bool = False
) -> RepoConfig:
    """Feast RepoConfig of :func:`store_config`."""
    return RepoConfig(repo_path=repo_dir(settings), **store_config(settings, project, bulk=bulk, serving=serving))


def write_feature_store_yaml(settings: Settings, project: str = DEFAULT_PROJECT) -> Path:
    """Write ``CONCORD_HOME/features/repo/feature_store.yaml`` mirroring the configuration."""
    folder = repo_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feature_store.yaml"
    text = (
        "# Written by features/store/config.py from the Concord settings, for the `feast` CLI to inspect.\n"
        "# Apply definitions with `concord features apply`, not `feast apply`.\n"
        + yaml.safe_dump(store_config(settings, project), sort_keys=False)
    )
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
    wanted = {
        "memory_limit": settings.offline_memory_limit,
        "temp_directory": str(spill),
        "threads": settings.offline_threads or os.cpu_count() or 1,
    }
    if wanted == _offline_engine:
        return
    try:
        backend = ibis.duckdb.connect(**wanted)
    except duckdb.Error as exc:
        raise ValueError(
            f"CONCORD_OFFLINE_MEMORY_LIMIT={settings.offline_memory_limit!r} or "
            f"CONCORD_OFFLINE_THREADS={settings.offline_threads!r} is not accepted by DuckDB: "
            f"{exc}"
        ) from exc
    spill.mkdir(parents=True, exist_ok=True)
    ibis.set_backend(backend)
    # ibis 12 calls DuckDB 2's deprecated fetch_arrow_table(); nothing for a Concord user to act on.
    warnings.filterwarnings("ignore", message="fetch_arrow_table", category=DeprecationWarning)
    _offline_engine = wanted


def feature_store(settings: Settings, project: str = DEFAULT_PROJECT, *, serving: bool = False) -> FeatureStore:
    """The Feast FeatureStore of these settings (writes ``feature_store.yaml`` alongside);
    ``serving``: with the registry refreshed in the background (see :func:`store_config`)."""
    write_feature_store_yaml(settings, project)
    return FeatureStore(repo_path=str(repo_dir(settings)), config=repo_config(settings, project, serving=serving))


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
