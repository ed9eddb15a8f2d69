"""Writing offline rows into Feast's online store in bulk, as fast as Feast's own store allows.

``FeatureStore.write_to_online_store`` converts a DataFrame value by value through generic
Python checks (``pd.isnull``, array sniffing), about 10 µs per value, and the Redis store then
reads every entity's stored timestamp before writing. At a million cases (about 95 million
feature values) that alone took over 15 minutes. Here:

- columns are converted to Feast ``ValueProto`` lists column-wise, with the same rules as
  Feast's ``python_values_to_proto_values`` for the scalar types the views use (null and NaN
  become an empty value; a test compares the two conversions value by value);
- rows go to the provider's ``online_write_batch``, the call Feast's own materialisation
  makes, so the online store's key and value layout stay Feast's;
- values repeat a lot (counts, flags, categories): one ``ValueProto`` is made, and on Redis
  serialised, per distinct value of a column, not per row;
- on SQLite the writer is :class:`BulkSqliteOnlineStore`, Feast's SQLite store writing each
  batch with one ``executemany`` instead of one ``execute`` per value;
- on Redis the writer is :class:`BulkRedisOnlineStore`, Feast's Redis store with a faster
  ``online_write_batch``: the same keys and fields (built by Feast's own helpers; a test
  compares the stored hashes byte for byte with Feast's writer), without the per-entity
  timestamp read (Feast's ``skip_dedup``), which is safe because
  :func:`features.store.materialisation.materialize` only writes rows newer than the previous materialised
  interval. Reads stay with Feast's ``redis`` store;
- large views are written by several processes at once, each a slice of the entities.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore, FeatureView, RepoConfig, utils
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key, extract_text_and_num
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, _versioned_fv_name
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.utils import to_naive_utc
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from features.offline.schemas import TIMESTAMP_FIELD

PARALLEL_MIN_ENTITIES = 100_000  # below this one process is faster than starting workers

Row = tuple[EntityKeyProto, dict[str, ValueProto], dt.datetime, dt.datetime | None]

_FIELDS: dict[ValueType, tuple[str, Callable[[Any], Any]]] = {
    ValueType.INT32: ("int32_val", int),
    ValueType.INT64: ("int64_val", int),
    ValueType.DOUBLE: ("double_val", float),
    ValueType.FLOAT: ("float_val", float),
    ValueType.STRING: ("string_val", str),
    ValueType.BOOL: ("bool_val", bool),
}


def proto_values(column: pa.Array | pa.ChunkedArray, value_type: ValueType) -> list[ValueProto]:
    """One ``ValueProto`` per value of ``column``, as Feast's ``python_values_to_proto_values``
    makes them: null (and NaN) -> an empty value. Types other than the scalar ones the views
    use go through Feast's own conversion."""
    if value_type not in _FIELDS:
        return python_values_to_proto_values(column.to_pylist(), value_type)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    name, make = _FIELDS[value_type]
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], column.type).dictionary_encode()
    distinct = [ValueProto(**{name: make(v)}) for v in encoded.dictionary.to_pylist()] + [ValueProto()]
    codes = encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False)
    return [distinct[code] for code in codes.tolist()]


def online_rows(table: pa.Table, view: FeatureView) -> list[Row]:
    """``table`` (entity column, ``event_timestamp``, features) as the rows that
    ``OnlineStore.online_write_batch`` takes."""
    join_keys = {column.name: column.dtype.to_value_type() for column in view.entity_columns}
    keys = [proto_values(table[name], value_type) for name, value_type in join_keys.items()]
    names = list(join_keys)
    entity_keys = [EntityKeyProto(join_keys=names, entity_values=list(values)) for values in zip(*keys, strict=True)]
    features = [feature.name for feature in view.features]
    columns = [proto_values(table[f.name], f.dtype.to_value_type()) for f in view.features]
    values = [dict(zip(features, row, strict=True)) for row in zip(*columns, strict=True)]
    stamps = table[TIMESTAMP_FIELD].cast(pa.timestamp("us")).to_pylist()  # naive UTC, as Feast's conversion
    return list(zip(entity_keys, values, stamps, [None] * table.num_rows, strict=True))


class BulkRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Configuration of :class:`BulkRedisOnlineStore` (the fields of Feast's Redis store)."""

    type: Literal["features.online_write.BulkRedisOnlineStore"] = "features.online_write.BulkRedisOnlineStore"  # type: ignore[assignment]  # noqa: E501


class BulkRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store, with a bulk ``online_write_batch`` for materialisation.

    Writes exactly what Feast's ``skip_dedup`` path writes (one hash per entity key: the
    ``_ts:<view>`` field and one field per feature, ``mmh3("<view>:<feature>")`` -> serialised
    value), with the field names hashed once per batch and each distinct value serialised once.
    """

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],  # type: ignore[override]
        progress: Callable[[int], Any] | None,
    ) -> None:
        store_config = config.online_store
        client = self._get_client(store_config)
        view_name = _versioned_fv_name(table, config)
        ts_key = f"_ts:{view_name}"
        fields: dict[str, bytes] = {}
        serialised: dict[int, bytes] = {}
        stamps: dict[dt.datetime, bytes] = {}
        version = config.entity_key_serialization_version
        with client.pipeline(transaction=False) as pipe:
            for entity_key, values, timestamp, _ in data:
                stamp = stamps.get(timestamp)
                if stamp is None:
                    proto = Timestamp()
                    proto.FromDatetime(utils.make_tzaware(timestamp))
                    stamp = stamps[timestamp] = proto.SerializeToString()
                mapping: dict[Any, bytes] = {ts_key: stamp}
                for feature, value in values.items():
                    field = fields.get(feature)
                    if field is None:
                        field = fields[feature] = _mmh3(f"{view_name}:{feature}")
                    blob = serialised.get(id(value))
                    if blob is None:
                        blob = serialised[id(value)] = value.SerializeToString()
                    mapping[field] = blob
                key = _redis_key(config.project, entity_key, entity_key_serialization_version=version)
                pipe.hset(key, mapping=mapping)
                if store_config.key_ttl_seconds:
                    pipe.expire(name=key, time=store_config.key_ttl_seconds)
            results = pipe.execute()
        if progress:
            progress(len(results))


class BulkSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Configuration of :class:`BulkSqliteOnlineStore` (the fields of Feast's SQLite store)."""

    type: Literal["features.online_write.BulkSqliteOnlineStore"] = "features.online_write.BulkSqliteOnlineStore"  # type: ignore[assignment]  # noqa: E501


class BulkSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store, with a bulk ``online_write_batch`` for materialisation.

    Writes the rows Feast's store writes (entity key, feature name, serialised value, its text,
    event and created timestamps, upserted) in one ``executemany`` per batch instead of one
    ``execute`` per value, each distinct value serialised once. Stores with vector search or
    the numeric-value column go to Feast's own writer.
    """

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],  # type: ignore[override]
        progress: Callable[[int], Any] | None,
    ) -> None:
        store_config = config.online_store
        if store_config.vector_enabled or getattr(store_config, "enable_openai_compatible_store", False):
            super().online_write_batch(config, table, data, progress)
            return
        conn = self._get_conn(config)
        name = _quote_id(_table_id(config.project, table, config.registry.enable_online_feature_view_versioning))
        upsert = (
            f"INSERT INTO {name} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
            "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
            "created_ts = excluded.created_ts;"
        )
        version = config.entity_key_serialization_version
        blobs: dict[int, tuple[bytes, str | None]] = {}
        # the adapter Feast registers for datetimes (epoch seconds), applied once per entity
        adapt = sqlite3.adapters.get((dt.datetime, sqlite3.PrepareProtocol), lambda value: value)

        def rows() -> Iterator[tuple[object, ...]]:
            for entity_key, values, timestamp, created in data:
                key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
                stamp = adapt(to_naive_utc(timestamp))
                created_stamp = adapt(to_naive_utc(created)) if created is not None else None
                for feature, value in values.items():
                    blob = blobs.get(id(value))
                    if blob is None:
                        blob = blobs[id(value)] = (value.SerializeToString(), extract_text_and_num(value, False)[0])
                    yield key, feature, blob[0], blob[1], stamp, created_stamp

        with conn:
            conn.executemany(upsert, rows())
        if progress:
            progress(len(data))


def write_rows(store: FeatureStore, view: FeatureView, table: pa.Table) -> int:
    """Write ``table`` (one row per entity) to the online store of ``store``, in batches of the
    configured ``materialization.online_write_batch_size``; returns the rows."""
    batch = store.config.materialization_config.online_write_batch_size or 10_000
    provider = store._get_provider()  # noqa: SLF001 - the provider is how Feast's own materialisation writes
    for offset in range(0, table.num_rows, batch):
        rows = online_rows(table.slice(offset, batch), view)
        provider.online_write_batch(store.config, view, rows, progress=None)
    return table.num_rows


# --------------------------------------------------------------------------- parallel writes


def _worker_write(repo_path: str, config: RepoConfig, view_name: str, path: str, offset: int, length: int) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = FeatureStore(repo_path=repo_path, config=config)
        view = store.get_feature_view(view_name)
        with pa.memory_map(path) as source:
            table = pa.ipc.open_file(source).read_all().slice(offset, length)
            return write_rows(store, view, table)


class OnlineWriter:
    """Writes views' latest rows through ``store`` (configured for bulk writes: see
    ``features.store.config.repo_config``); large views go to ``workers`` processes, each a slice of
    the entities, when the online store takes concurrent writers (Redis; SQLite has one writer
    at a time). The processes are started once, at the first large view, and stop on close.
    """

    def __init__(self, store: FeatureStore, scratch: Path, workers: int | None = None) -> None:
        self.store = store
        self.scratch = scratch
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> OnlineWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def parallel(self, rows: int) -> bool:
        """Whether ``rows`` entities are written by the worker processes."""
        return (
            self.workers > 1
            and rows >= PARALLEL_MIN_ENTITIES
            and isinstance(self.store.config.online_store, RedisOnlineStoreConfig)
        )

    def write(self, view: FeatureView, table: pa.Table) -> int:
        """Write ``table`` (one row per entity) for ``view``; returns the rows written."""
        if not self.parallel(table.num_rows):
            return write_rows(self.store, view, table)
        if self._pool is None:  # spawn: no Redis or SQLite handle is inherited by a fork
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        path = self.scratch / f"{view.name}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as ipc:
            ipc.write_table(table)
        try:
            step = -(-table.num_rows // self.workers)
            futures = [
                self._pool.submit(
                    _worker_write, str(self.store.repo_path), self.store.config, view.name, str(path), start, step
                )
                for start in range(0, table.num_rows, step)
            ]
            return int(np.sum([future.result() for future in futures]))
        finally:
            path.unlink(missing_ok=True)
