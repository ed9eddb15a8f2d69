"""The bulk online-store writer writes exactly what Feast's own writer writes.

``features/online_write.py`` converts columns to Feast values itself and, on Redis, writes
through a subclass of Feast's Redis store. These tests compare both with Feast's own code: the
conversion value by value against ``feast.utils._convert_arrow_to_proto`` (what
``write_to_online_store`` uses), and the Redis hashes byte for byte against
``FeatureStore.write_to_online_store``, in one process and in several.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from feast import FeatureStore
from feast.utils import _convert_arrow_to_proto

from concord.settings import Settings
from features import online_write
from features.offline.schemas import SCHEMAS
from features.online_write import OnlineWriter, online_rows
from features.store.config import apply, feature_store, repo_config

VIEWS = ("case_state", "contact_repair", "repayment_capacity", "litigation", "mediator_performance")


def _random_table(view: str, rows: int, seed: int) -> pa.Table:
    """Rows of ``view``'s offline schema with random values, nulls, NaN and infinities."""
    rng = np.random.default_rng(seed)
    schema = SCHEMAS[view]()
    columns: dict[str, pa.Array] = {}
    for field in schema:
        null = rng.random(rows) < 0.2
        if field.name == schema.names[0]:  # the entity: distinct, never null
            if pa.types.is_string(field.type):
                columns[field.name] = pa.array([f"k{i:06d}" for i in range(rows)], field.type)
            else:
                columns[field.name] = pa.array(np.arange(1, rows + 1), field.type)
        elif pa.types.is_timestamp(field.type):
            seconds = rng.integers(1_600_000_000, 1_800_000_000, rows)
            columns[field.name] = pa.array(seconds * 1_000_000, pa.int64()).cast(field.type)
        elif pa.types.is_string(field.type):
            values = rng.choice(["a", "b", "", "中文"], rows).astype(object)
            values[null] = None
            columns[field.name] = pa.array(values, field.type)
        elif pa.types.is_floating(field.type):
            values = rng.normal(0, 1e4, rows)
            values[rng.random(rows) < 0.05] = np.nan
            values[rng.random(rows) < 0.02] = np.inf
            columns[field.name] = pa.array(values, field.type, mask=null)
        else:
            values = rng.integers(-3, 40, rows)
            columns[field.name] = pa.array(values, field.type, mask=null)
    return pa.table(columns, schema=schema)


@pytest.fixture
def applied(settings: Settings):  # noqa: ANN201 - (store, views by name)
    store = feature_store(settings)
    apply(settings, store=store)
    return store, {view.name: view for view in store.list_feature_views()}


@pytest.mark.parametrize("view_name", VIEWS)
def test_rows_are_feasts_own_conversion(applied, view_name: str) -> None:
    _, views = applied
    view = views[view_name]
    table = _random_table(view_name, 500, seed=len(view_name))
    join_keys = {entity.name: entity.dtype.to_value_type() for entity in view.entity_columns}
    expected = _convert_arrow_to_proto(table, view, join_keys)
    # two chunks: the conversion must not depend on how the table is laid out
    chunked = pa.concat_tables([table.slice(0, 123), table.slice(123)])
    ours = online_rows(chunked, view)
    assert len(ours) == len(expected)
    for (key, values, stamp, created), (key_f, values_f, stamp_f, created_f) in zip(ours, expected, strict=True):
        assert key.SerializeToString() == key_f.SerializeToString()
        assert values.keys() == values_f.keys()
        assert {k: v.SerializeToString() for k, v in values.items()} == {
            k: v.SerializeToString() for k, v in values_f.items()
        }
        assert stamp == stamp_f and created is created_f is None


def _hashes(client, project: str) -> dict[bytes, dict[bytes, bytes]]:  # noqa: ANN001
    """Every hash of ``project`` by entity key (the key without the project suffix)."""
    suffix = project.encode()
    found = {}
    for key in client.scan_iter(match=b"*" + suffix, count=1000):
        found[key[: -len(suffix)]] = client.hgetall(key)
    return found


@pytest.mark.services
@pytest.mark.parametrize("workers", [1, 2])
def test_bulk_redis_store_writes_what_feast_writes(
    settings: Settings, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import redis

    monkeypatch.setattr(online_write, "PARALLEL_MIN_ENTITIES", 100)  # exercise the worker processes
    settings = dataclasses.replace(settings, redis_url=redis_url)
    tag = uuid.uuid4().hex[:10]
    feast_project, bulk_project = f"concord_feast_{tag}", f"concord_bulk_{tag}"
    stores = {project: feature_store(settings, project) for project in (feast_project, bulk_project)}
    for project, store in stores.items():
        apply(settings, project, store=store)
    bulk = FeatureStore(
        repo_path=str(stores[bulk_project].repo_path), config=repo_config(settings, bulk_project, bulk=True)
    )
    assert type(bulk._get_provider().online_store).__name__ == "BulkRedisOnlineStore"  # noqa: SLF001
    client = redis.Redis.from_url(redis_url)
    try:
        with OnlineWriter(bulk, tmp_path / "scratch", workers) as writer:
            for view_name in VIEWS:
                table = _random_table(view_name, 300, seed=7)
                stores[feast_project].write_to_online_store(view_name, df=table.to_pandas())
                assert writer.parallel(table.num_rows) is (workers > 1)
                assert writer.write(bulk.get_feature_view(view_name), table) == 300
        expected, written = _hashes(client, feast_project), _hashes(client, bulk_project)
        assert len(expected) == 300 * 3  # one hash per entity: the three debtor views share theirs
        assert written == expected
    finally:  # both projects share one registry, which Feast's teardown deletes: remove keys here
        for project in stores:
            for key in client.scan_iter(match=b"*" + project.encode(), count=1000):
                client.delete(key)
        client.close()


def test_bulk_sqlite_store_writes_what_feast_writes(settings: Settings, tmp_path: Path) -> None:
    import sqlite3

    stores = {project: feature_store(settings, project) for project in ("feastwrites", "bulkwrites")}
    for project, store in stores.items():
        apply(settings, project, store=store)
    bulk = FeatureStore(
        repo_path=str(stores["bulkwrites"].repo_path), config=repo_config(settings, "bulkwrites", bulk=True)
    )
    assert type(bulk._get_provider().online_store).__name__ == "BulkSqliteOnlineStore"  # noqa: SLF001
    writer = OnlineWriter(bulk, tmp_path / "scratch", workers=2)
    for view_name in VIEWS:
        table = _random_table(view_name, 200, seed=11)
        stores["feastwrites"].write_to_online_store(view_name, df=table.to_pandas())
        assert not writer.parallel(10**7)  # SQLite: one writer
        assert writer.write(bulk.get_feature_view(view_name), table) == 200
    with sqlite3.connect(settings.home / "features" / "online.db") as conn:
        for view_name in VIEWS:
            rows = {
                project: conn.execute(
                    f"SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                    f"FROM {project}_{view_name} ORDER BY 1, 2"
                ).fetchall()
                for project in stores
            }
            assert rows["bulkwrites"] == rows["feastwrites"] and len(rows["feastwrites"]) > 200, view_name


def test_materialize_writes_each_entity_once_at_its_latest_row(settings: Settings) -> None:
    """The SQLite path (one writer) through the same conversion: the stored value is the last."""
    store = feature_store(settings)
    apply(settings, store=store)
    view = store.get_feature_view("litigation")
    table = _random_table("litigation", 50, seed=3)
    writer = OnlineWriter(store, settings.home / "scratch")
    writer.write(view, table)
    stamp = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    newer = table.set_column(1, "event_timestamp", pa.array([stamp] * 50, table.schema.field(1).type))
    newer = newer.set_column(2, table.schema.names[2], pa.array(range(50), table.schema.field(2).type))
    writer.write(view, newer)
    got = store.get_online_features(
        features=[f"litigation:{table.schema.names[2]}"], entity_rows=[{"debtor_key": f"k{i:06d}"} for i in range(50)]
    ).to_dict()
    assert got[table.schema.names[2]] == list(range(50))
