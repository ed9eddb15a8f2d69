"""Materialisation: loading each entity's latest offline row into the online store
(``materialize``, ``latest_rows``, ``Materialized``), incrementally from the last materialised end.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView, FileSource

from concord.settings import Settings
from features.offline.asof import utc
from features.offline.build import built_as_of, last_per_entity, latest_path
from features.offline.schemas import TIMESTAMP_FIELD, TIMESTAMP_TYPE
from features.online_write import OnlineWriter
from features.store.config import DEFAULT_PROJECT, feature_store, features_dir, repo_config, repo_dir

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # first materialisation starts here


@dataclass(frozen=True)
class Materialized:
    """What :func:`materialize` did for one feature view."""

    start: dt.datetime  # exclusive, UTC
    end: dt.datetime  # inclusive, UTC
    entities: int  # entities written to the online store
    seconds: float


def latest_rows(path: Path, entity: str, start: dt.datetime, end: dt.datetime, batch_rows: int = 1_000_000) -> pa.Table:
    """The last row (by ``event_timestamp``) of every entity with a row in (start, end], read
    from an offline parquet table batch by batch: memory stays about one batch plus one row
    per entity."""
    file = pq.ParquetFile(path)
    low, high = pa.scalar(utc(start), type=TIMESTAMP_TYPE), pa.scalar(utc(end), type=TIMESTAMP_TYPE)
    best: pa.Table | None = None
    for batch in file.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([batch])
        stamps = table[TIMESTAMP_FIELD]
        table = table.filter(pc.and_(pc.greater(stamps, low), pc.less_equal(stamps, high)))
        if table.num_rows:
            best = last_per_entity(table if best is None else pa.concat_tables([best, table]), entity)
    return best if best is not None else file.schema_arrow.empty_table()


def materialize(
    settings: Settings,
    end: dt.datetime | None = None,
    project: str = DEFAULT_PROJECT,
    *,
    store: FeatureStore | None = None,
    workers: int | None = None,
) -> dict[str, Materialized]:
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
    end_utc = min(utc(end), utc(as_of))
    bulk = FeatureStore(repo_path=str(repo_dir(settings)), config=repo_config(settings, store.project, bulk=True))
    done: dict[str, Materialized] = {}
    with OnlineWriter(bulk, features_dir(settings) / "materializing", workers) as writer:
        for view in store.list_feature_views():
            # Up to the build's as_of, each entity's last row is in the build's .latest table.
            companion = latest_path(settings, view.name) if end_utc == utc(as_of) else None
            if (run := _materialize_view(store, writer, view, end_utc, companion)) is not None:
                done[view.name] = run
    return done


def _materialize_view(
    store: FeatureStore, writer: OnlineWriter, view: FeatureView, end_utc: dt.datetime, companion: Path | None
) -> Materialized | None:
    start = utc(view.most_recent_end_time) if view.most_recent_end_time else EARLIEST
    if start >= end_utc:
        return None
    source = view.batch_source
    if not isinstance(source, FileSource):  # not one of ours: leave it to `feast materialize`
        return None
    started = time.perf_counter()
    if companion is not None and companion.exists():
        latest = pq.read_table(companion)
        latest = latest.filter(pc.greater(latest[TIMESTAMP_FIELD], pa.scalar(start, type=TIMESTAMP_TYPE)))
    else:
        latest = latest_rows(Path(source.path), view.join_keys[0], start, end_utc)
    if latest.num_rows:
        writer.write(view, latest)
    store.registry.apply_materialization(view, store.project, start, end_utc, commit=True)
    return Materialized(start, end_utc, latest.num_rows, round(time.perf_counter() - started, 2))
