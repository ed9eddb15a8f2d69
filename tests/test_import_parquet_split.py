"""Parquet files are cut into runs of rows read apart (in worker processes); what comes out must
be exactly what one pass over the file, converting every cell with ``_cell_text``, gives."""

from __future__ import annotations

import datetime as dt
import decimal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

import ingestion.importer
import ingestion.table_file
from concord.db import make_engine
from concord.settings import Settings
from ingestion.cell_text import _cell_text
from ingestion.contracts import TABLES
from ingestion.importer import import_file
from ingestion.parquet_format import _read_parquet_range
from ingestion.parts import part_sizes
from ingestion.table_file import read_table
from simulator.world import simulate_world
from simulator.writers import write_world


def _one_pass_bodies(path, chunk_rows: int):
    """How the importer read parquet before it was split: every cell of every batch in Python."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        yield pd.DataFrame(
            {i: [_cell_text(v) for v in frame[c].tolist()] for i, c in enumerate(frame.columns)}, dtype=object
        )


def _read_in_one_pass(path, table, sheet=None, chunk_rows: int = 100_000, **options):
    opened = read_table(path, table, sheet, chunk_rows, **options)
    opened._parquet_ranges = None
    opened._bodies = lambda: _one_pass_bodies(path, chunk_rows)
    return opened


def _rows(raws) -> tuple[list[list[str]], list[int], list[int]]:
    raws = list(raws)
    rows = [row for raw in raws for row in raw.frame.fillna("").to_numpy().tolist()]
    return rows, [int(r) for raw in raws for r in raw.rows], [raw.last_row for raw in raws][-1:]


def _typed_file(path, rows: int, row_group_size: int) -> None:
    def cell(i: int, value):
        return None if i % 11 == 3 else value

    moment = dt.datetime(2024, 2, 29, 23, 59, 59, 999000)
    columns = {
        "mediator_id": pa.array([cell(i, f"M{i}") for i in range(rows)]),
        "organisation": pa.array([["调解中心", "", " spaced ", "Smith, Jones & Co", None][i % 5] for i in range(rows)]),
        "capacity": pa.array([cell(i, i * 7 - 40) for i in range(rows)]),
        "languages": pa.array([cell(i, "mandarin;minnan") for i in range(rows)], pa.large_string()),
        # No nulls: with them, pandas made this column doubles per batch, text depending on the batch.
        "big": pa.array([10**15 + i for i in range(rows)]),
        "ratio": pa.array(
            [
                cell(
                    i,
                    [
                        0.1 + 0.2,
                        float(i),
                        1e20,
                        -0.0,
                        1e-12,
                        123456789.123456789,
                        i / 7,
                        round(i * 0.37, 2),
                        4e6 - 1 / 3,
                        1e-4 * i,
                    ][i % 10],
                )
                for i in range(rows)
            ]
        ),
        "single": pa.array([cell(i, i / 3) for i in range(rows)], pa.float32()),
        "flag": pa.array([cell(i, i % 2 == 0) for i in range(rows)]),
        "day": pa.array([cell(i, dt.date(2026, 1, 1) - dt.timedelta(days=97 * i)) for i in range(rows)]),
        "ancient": pa.array([cell(i, dt.date(900 + i, 1, 1)) for i in range(rows)]),
        "at": pa.array(
            [cell(i, moment - dt.timedelta(days=400 * i, milliseconds=i)) for i in range(rows)], pa.timestamp("ms")
        ),
        "at_us": pa.array(
            [cell(i, moment - dt.timedelta(days=i * 7000, microseconds=i)) for i in range(rows)], pa.timestamp("us")
        ),
        "zoned": pa.array(
            [cell(i, moment + dt.timedelta(hours=i)) for i in range(rows)], pa.timestamp("ms", tz="Asia/Shanghai")
        ),
        "amount": pa.array(
            [cell(i, decimal.Decimal(i * 1001 - 5000) / 100) for i in range(rows)], pa.decimal128(18, 2)
        ),
        "tiny": pa.array([cell(i, decimal.Decimal(i - 20) / 10**8) for i in range(rows)], pa.decimal128(18, 8)),
        "kind": pa.array([cell(i, "ab"[i % 2]) for i in range(rows)]).dictionary_encode(),
        "nothing": pa.nulls(rows),
    }
    table = pa.table(columns)
    blank = [i % 13 == 5 for i in range(rows)]  # rows with no value at all: dropped as blank
    table = pa.table(
        {
            name: column if name == "big" else pc.if_else(pa.array(blank), pa.scalar(None, column.type), column)
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.mark.parametrize("row_group_size", [7, 8, 10, 64, 1000])  # 8: parts starting on row-group boundaries
def test_parquet_parts_read_like_one_pass(tmp_path, row_group_size: int) -> None:
    path = tmp_path / "mediators.parquet"
    _typed_file(path, 97, row_group_size)
    opened = read_table(path, TABLES["mediators"], chunk_rows=10)
    assert opened.part_count == len(part_sizes(97, 10)) > 10
    assert _rows(opened.chunks()) == _rows(_read_in_one_pass(path, TABLES["mediators"], chunk_rows=10).chunks())
    # Every column's text, not only the contract's: the ignored ones decide which rows are blank.
    split = pd.concat(
        [part.body if part.body is not None else _read_parquet_range(part.parquet) for part in opened.parts()],
        ignore_index=True,
    )
    whole = pd.concat(_one_pass_bodies(path, 10), ignore_index=True)
    assert split.shape == (97, 17)
    for position in whole.columns:
        assert split[position].tolist() == whole[position].tolist(), opened.path.name + f" column {position}"
        assert all(type(v) is str for v in split[position])


def test_parquet_written_by_pandas_reads_like_one_pass(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "mediator_id": pd.array(["M1", None, "M3", "M4"], dtype="string"),
            "organisation": ["a", None, "c", "d"],
            "capacity": pd.array([1, None, 3, 4], dtype="Int64"),
            "languages": pd.Categorical(["x", None, "y", "x"]),
        },
        index=[5, 7, 9, 11],
    )
    path = tmp_path / "mediators.parquet"
    frame.to_parquet(path, row_group_size=3)
    opened = read_table(path, TABLES["mediators"], chunk_rows=2)
    assert opened.part_count == 4  # parts of one row (a quarter of 2, see part_sizes)
    assert _rows(opened.chunks()) == _rows(_read_in_one_pass(path, TABLES["mediators"], chunk_rows=2).chunks())


def test_parquet_of_one_part_is_not_split_further(tmp_path) -> None:
    path = tmp_path / "mediators.parquet"
    _typed_file(path, 20, 5)
    opened = read_table(path, TABLES["mediators"], chunk_rows=50)
    assert opened.part_count == 1 and ingestion.importer._worker_pool(opened) is None


def _stored(settings: Settings, table: str) -> list[tuple]:
    engine = make_engine(settings)
    with engine.connect() as conn:
        frame = pd.read_sql(text(f"select * from {table}"), conn)
    engine.dispose()
    frame = frame.drop(columns=[c for c in frame.columns if c == "id" or "batch" in c])
    return sorted(map(tuple, frame.astype(str).to_numpy().tolist()))


def test_multi_part_parquet_imports_like_one_pass(tmp_path, monkeypatch) -> None:
    world = write_world(simulate_world(150, seed=5), tmp_path / "world", "parquet")
    capacity = pq.read_table(world["capacity"]).to_pandas()
    capacity.loc[3, "employment"] = "retired?"  # not one of the allowed values
    capacity.loc[40] = capacity.loc[7]  # a duplicate key in a later part
    capacity.loc[60, "as_of"] = None
    capacity = capacity.astype(object)
    capacity.loc[61, list(capacity.columns)] = None  # a blank row
    capacity_path = tmp_path / "capacity.parquet"
    pq.write_table(pa.Table.from_pandas(capacity, preserve_index=False), capacity_path, row_group_size=23)
    events = pq.read_table(world["events"])
    events_path = tmp_path / "events.parquet"
    pq.write_table(events, events_path, row_group_size=17)
    monkeypatch.setattr(ingestion.table_file.read_table, "__defaults__", (None, 30))  # parts of 30 rows
    outcomes = []
    for how in ("one pass", "parts"):
        settings = Settings.from_env({"CONCORD_HOME": str(tmp_path / how), "CONCORD_PSEUDONYM_KEY": "test-secret"})
        with monkeypatch.context() as patch:
            if how == "one pass":
                patch.setattr(ingestion.importer, "read_table", _read_in_one_pass)
            rejected: list[pd.DataFrame] = []
            imports = [
                import_file(name, path, settings, make_engine(settings), rejected_rows=rejected, received_at=None)
                for name, path in (("cases", world["cases"]), ("capacity", capacity_path), ("events", events_path))
            ]
        reports = [
            (
                r.rows_read,
                r.inserted,
                r.updated,
                r.unchanged,
                r.rejected,
                r.flags,
                [(x.row, x.column, x.reason) for x in r.rejections],
            )
            for r in imports
        ]
        # write_outputs sorts rejected rows by row: the order of the parts' frames is not seen.
        outcomes.append(
            (
                reports,
                sorted(pd.concat(rejected).astype(str).to_numpy().tolist()),
                _stored(settings, "capacity_snapshots"),
                _stored(settings, "events"),
            )
        )
    assert outcomes[0] == outcomes[1]
    reports = outcomes[1][0]
    assert reports[1][4] >= 3 and reports[2][0] == events.num_rows > 60
