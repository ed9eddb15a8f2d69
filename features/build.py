"""Offline feature tables: the ledger turned into point-in-time parquet, one table per feature view.

``build_offline_tables(settings, as_of)`` reads the case ledger and writes, under
``settings.home / "features" / "offline"``, one parquet file per feature view of
``features/repo``. Every row carries ``event_timestamp``: the moment from which its values
were *known*, so that Feast's point-in-time join (``get_historical_features``) returns exactly
what Concord could have known at any entity timestamp.

Availability, late arrivals
    A source row becomes known at ``max(its own time, received_at)`` (``received_at`` NULL =
    a historical backfill, known when it happened), rounded up to the whole second. Its own
    time is ``checked_at`` for contact checks, ``at`` for events and 00:00 Asia/Shanghai of
    ``as_of`` for capacity and litigation snapshots. A capacity snapshot dated in January that
    reaches Concord in March therefore changes the features only from March on, and where a
    later snapshot was already known it does not change them at all ("latest" always means
    latest by the row's own date among the rows known at that moment).

Windows
    Counts "in the last N days" at time T count events whose ``at`` lies in (T - N days, T]
    among events known at T; an event contributes on [availability, at + N days). The tables
    hold a row at every moment such a count changes (an event becoming known, an event leaving
    a 1-, 7- or 30-day window), so the step function is exact at any time. Everything that
    depends on the request time itself (days past due, days since the last contact) is left to
    the on-demand view ``case_ages`` (``features/repo/views.py``), computed from the stored
    epoch features and the request's ``decision_ts``.

Only information known at ``as_of`` enters: source rows available later are left out and no
row is stamped after ``as_of``. Every entity also gets one all-null row at 1970-01-01 ("nothing
known yet"; see :func:`with_origin_rows` for the Feast behaviour it guards against). Re-run the
build (then ``materialize``) on a schedule to move the windows on.

Scale: the case-level table is computed case-chunk by case-chunk with numpy (searchsorted on
case-sorted event times), written row group by row group; see ``benchmarks/bench_features.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, text

from concord.settings import Settings
from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES

DAY = 86_400  # seconds
WINDOWS_DAYS = (1, 7, 30)
SHANGHAI_OFFSET = 8 * 3600  # seconds east of UTC; China has no daylight saving
TIMESTAMP_FIELD = "event_timestamp"
CHUNK_CASES = 50_000  # cases per case_state chunk: bounds memory (about 0.5 GB per 50,000 cases)
PARALLEL_MIN_CHUNKS = 4  # fewer chunks are built faster here than by starting worker processes
ROW_GROUP_ROWS = 100_000  # rows per parquet row group of the offline tables
_SPAN = np.int64(1) << np.int64(34)  # seconds per entity block in composite sort keys (> year 2500)

# Contact channels: which actions count as an attempt on which channel.
CHANNELS: dict[str, tuple[str, ...]] = {
    "sms": ("sms_warning", "flash_sms", "similar_case_push"),
    "voice": ("voice_call",),
    "mediator": ("mediator_call", "video_mediation", "online_negotiation", "installment_offer"),
    "legal": ("lawyer_letter", "asset_preservation", "payment_order", "file_lawsuit", "pre_check_write_off",
              "judicial_confirmation", "notarized_agreement", "enforcement"),
    "repair": ("contact_repair",),
}
CREDITOR_TYPES = ("bank", "consumer_finance", "other")
PRODUCT_TYPES = ("credit_card", "personal_loan", "consumer_loan")
PHONE_STATUS_VALUES = ("active", "suspended", "vacant", "unknown")
EMPLOYMENT_VALUES = ("employed", "self_employed", "unemployed", "retired", "unknown")

# The furthest stage a case has reached, from its known events (a cumulative maximum).
STAGES = ("new", "warning", "mediation", "agreement", "litigation", "paid", "written_off", "closed")
_LITIGATION_ACTIONS = ("payment_order", "file_lawsuit", "enforcement")
_LITIGATION_OUTCOMES = ("order_issued", "filed", "judged")
_AGREEMENT_ACTIONS = ("notarized_agreement", "judicial_confirmation")

TABLE_NAMES = ("contact_repair", "repayment_capacity", "litigation", "case_state", "mediator_performance")


def offline_dir(settings: Settings) -> Path:
    """Folder of the offline parquet tables: ``CONCORD_HOME/features/offline``."""
    return settings.home / "features" / "offline"


def offline_path(settings: Settings, table: str) -> Path:
    """Parquet file of one offline table (``contact_repair``, ``case_state``, ...)."""
    return offline_dir(settings) / f"{table}.parquet"


# --------------------------------------------------------------------------- time helpers


def _utc(moment: dt.datetime | None) -> dt.datetime:
    """Aware UTC; naive input is taken as UTC, None as now."""
    if moment is None:
        return dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _epoch_seconds(values: pd.Series) -> np.ndarray:
    """Naive-UTC timestamps (text from SQLite, datetimes from PostgreSQL) as float epoch seconds,
    rounded up to the whole second; NaN where missing."""
    if len(values) == 0:
        return np.zeros(0)
    stamps = pd.to_datetime(values, format="ISO8601", utc=True)
    micros = stamps.to_numpy(dtype="datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
    out = np.ceil(micros)
    out[stamps.isna().to_numpy()] = np.nan
    return out


def _date_seconds(values: pd.Series) -> np.ndarray:
    """Calendar dates as epoch seconds of their 00:00 in Asia/Shanghai; NaN where missing."""
    if len(values) == 0:
        return np.zeros(0)
    days = pd.to_datetime(values, format="ISO8601")
    out = days.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(np.float64) - SHANGHAI_OFFSET
    out[days.isna().to_numpy()] = np.nan
    return out


def _availability(own_time: np.ndarray, received: np.ndarray) -> np.ndarray:
    """When a row became known: max(own time, received_at); received_at NaN = own time."""
    return np.fmax(own_time, received)


# --------------------------------------------------------------------------- grouped numpy helpers


def _last_of_runs(keys: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal sorted keys (the row to keep when several
    source rows become known at the same moment: the state after all of them)."""
    keep = np.ones(len(keys), dtype=bool)
    keep[:-1] = keys[1:] != keys[:-1]
    return keep


class _Counter:
    """Counts, per query key (entity * SPAN + time), the items of the same entity that are active
    at that time: known (start <= t) and, for a window, not yet out of it (t < end).

    Items of earlier entities appear once among the starts and once among the ends below the
    query key and cancel out, so one global searchsorted serves every entity at once.
    """

    def __init__(self, ent: np.ndarray, start: np.ndarray, query: np.ndarray) -> None:
        self.base = ent.astype(np.int64) * _SPAN
        self.start = start.astype(np.int64)
        self.query = query
        self._started: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _known(self, mask: np.ndarray) -> np.ndarray:
        cached = self._started.get(id(mask))
        if cached is None or cached[0] is not mask:  # the mask itself is kept, so its id stays unique
            starts = np.sort(self.base[mask] + self.start[mask])
            cached = (mask, np.searchsorted(starts, self.query, side="right").astype(np.int32))
            self._started[id(mask)] = cached
        return cached[1]

    def total(self, mask: np.ndarray) -> np.ndarray:
        """Items known so far (no window)."""
        ends = np.sort(self.base[mask] + (_SPAN - 1))
        return (self._known(mask) - np.searchsorted(ends, self.query, side="right")).astype(np.int32)

    def window(self, mask: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Items known and with ``end`` (seconds, >= start) still ahead."""
        ends = np.sort(self.base[mask] + end[mask].astype(np.int64))
        return (self._known(mask) - np.searchsorted(ends, self.query, side="right")).astype(np.int32)


def _window_end(at: np.ndarray, avail: np.ndarray, days: int) -> np.ndarray:
    """End of an event's contribution to an N-day window: at + N days, never before it is known."""
    return np.maximum(avail, at + days * DAY)


@dataclass
class _Asof:
    """Rows of one entity-sorted source, and for each query key the last row known by then."""

    position: np.ndarray  # index into the (entity, availability)-sorted rows, -1 if none
    found: np.ndarray  # bool


def _asof(ent_sorted: np.ndarray, avail_sorted: np.ndarray, q_ent: np.ndarray, q_time: np.ndarray) -> _Asof:
    """For each query (entity, time): the last source row of that entity available at or before it."""
    keys = ent_sorted.astype(np.int64) * _SPAN + avail_sorted.astype(np.int64)
    query = q_ent.astype(np.int64) * _SPAN + q_time.astype(np.int64)
    pos = np.searchsorted(keys, query, side="right") - 1
    found = pos >= 0
    found[found] = ent_sorted[pos[found]] == q_ent[found]
    return _Asof(np.where(found, pos, -1), found)


def _grouped_cummax(ent_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running maximum of non-negative int64 ``values`` within each entity block (rows sorted by
    entity): the entity index in the high bits keeps blocks apart."""
    composite = ent_sorted.astype(np.int64) * _SPAN + values.astype(np.int64)
    return np.maximum.accumulate(composite) - ent_sorted.astype(np.int64) * _SPAN


def _take(values: np.ndarray, at: _Asof, fill: float | int) -> np.ndarray:
    """``values[position]`` where a row was found, ``fill`` elsewhere."""
    out = np.full(len(at.position), fill, dtype=np.result_type(values.dtype, type(fill)))
    out[at.found] = values[at.position[at.found]]
    return out


# --------------------------------------------------------------------------- reading the ledger


def _read(conn: Connection, sql: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    """A query as a DataFrame (plain SQL that runs on SQLite and PostgreSQL alike)."""
    return pd.read_sql_query(text(sql), conn, params=params or {})


def _to_arrow(columns: dict[str, object], schema: pa.Schema) -> pa.Table:
    """An Arrow table of exactly ``schema`` from numpy arrays (or ready Arrow arrays).

    ``event_timestamp`` is given as epoch seconds; NaN in float columns becomes null.
    """
    arrays = []
    for field_ in schema:
        values = columns[field_.name]
        if isinstance(values, pa.Array):
            array = values if values.type == field_.type else values.cast(field_.type)
        elif field_.name == TIMESTAMP_FIELD:
            array = pa.array(np.asarray(values).astype(np.int64) * 1_000_000, type=field_.type)
        elif pa.types.is_string(field_.type):
            array = pa.array(np.asarray(values, dtype=object), type=field_.type, from_pandas=True)
        else:
            numeric = np.asarray(values).astype(field_.type.to_pandas_dtype(), copy=False)
            array = pa.array(numeric, type=field_.type, from_pandas=True)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def _stamp_table(frame: pd.DataFrame, times: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Arrow table of ``schema`` from a DataFrame of the entity and feature columns plus the
    availability times (epoch seconds)."""
    columns: dict[str, object] = {name: frame[name].to_numpy() for name in frame.columns}
    columns[TIMESTAMP_FIELD] = times
    return _to_arrow(columns, schema)


def _vocabulary(values: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """String column from small-vocabulary codes, built in Arrow (no Python strings per row)."""
    return pa.array(values, type=pa.string()).take(pa.array(codes.astype(np.int32)))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array (sort-based: faster than np.unique here)."""
    keys = np.sort(keys)
    if len(keys) == 0:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


class _Writer:
    """Writes one parquet table atomically (a temporary file renamed on success)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.tmp = path.with_suffix(".parquet.tmp")
        self.schema = schema
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Dictionary pages only for strings, statistics only for what filters use: ~40 % faster
            # writes for ~5 % more bytes than the defaults.
            strings = [f.name for f in self.schema if pa.types.is_string(f.type)]
            stats = [self.schema.names[0], TIMESTAMP_FIELD]
            self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", use_dictionary=strings,
                                           write_statistics=stats)
        # Row groups of 100,000 rows: a parquet reader (DuckDB's, pyarrow's) decodes a row group at
        # a time, so this bounds what one reading thread holds.
        self.writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def abort(self) -> None:
        """Drop the partial file (the previous table, if any, stays)."""
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        if self.writer is None:  # no rows at all: still write an empty, typed table
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.schema.empty_table(), self.tmp)
        else:
            self.writer.close()
        os.replace(self.tmp, self.path)
        return self.path


# --------------------------------------------------------------------------- schemas

_I32, _I64, _F64, _STR = pa.int32(), pa.int64(), pa.float64(), pa.string()
_TS = pa.timestamp("us", tz="UTC")


def _schema(entity: tuple[str, pa.DataType], features: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema([entity, (TIMESTAMP_FIELD, _TS), *features])


def contact_repair_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``contact_repair`` with their Arrow types."""
    return [
        ("checks_total", _I32), ("checks_active", _I32), ("checks_suspended", _I32), ("checks_vacant", _I32),
        ("checks_unknown", _I32), ("repaired_numbers_total", _I32), ("repair_successes", _I32),
        *[(f"last_status_{s}", _I32) for s in PHONE_STATUS_VALUES],
        ("last_check_ts", _F64), ("last_repair_ts", _F64),
    ]


def repayment_capacity_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``repayment_capacity``."""
    return [
        ("monthly_income", _F64), ("income_stability", _F64),
        *[(f"employment_{e}", _I32) for e in EMPLOYMENT_VALUES],
        ("social_insurance_months", _F64), ("has_property", _I32), ("has_vehicle", _I32),
        ("other_debt", _F64), ("monthly_spend", _F64), ("debt_to_income", _F64), ("spend_to_income", _F64),
        ("capacity_as_of_ts", _F64),
    ]


def litigation_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``litigation``."""
    return [
        ("defendant_cases", _I32), ("enforcement_cases", _I32), ("terminated_no_assets", _I32),
        ("dishonest_listed", _I32), ("consumption_restricted", _I32), ("litigation_as_of_ts", _F64),
    ]


def _success_label(channel: str) -> str:
    """What a successful attempt is called per channel: a repair *finds* a working number
    (outcome delivered), every other channel *reaches* the debtor (REACHED_OUTCOMES)."""
    return "found" if channel == "repair" else "reached"


def case_state_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``case_state``."""
    windowed = [(f"{ch}_{kind}_{w}d", _I32) for ch in CHANNELS for kind in ("attempts", _success_label(ch))
                for w in WINDOWS_DAYS]
    return [
        ("creditor_type", _STR), *[(f"creditor_{c}", _I32) for c in CREDITOR_TYPES],
        *[(f"product_{p}", _I32) for p in PRODUCT_TYPES], ("debtor_company", _I32),
        ("principal", _F64), ("interest", _F64), ("penalty", _F64), ("fees", _F64), ("total_claim", _F64),
        ("annual_rate", _F64), ("in_scope", _I32), ("has_phone", _I32), ("overdue_since_ts", _I64),
        ("has_last_payment", _I32), ("last_payment_gap_days", _F64),
        ("stage", _STR), ("stage_code", _I32),
        *windowed,
        ("reached_7d", _I32), ("reached_30d", _I32), ("attempts_total", _I32), ("reached_total", _I32),
        ("ever_reached", _I32), ("promises_total", _I32), ("settled_total", _I32), ("disputed_total", _I32),
        ("opted_out_total", _I32), ("paid_amount_total", _F64), ("last_reached_ts", _F64), ("last_attempt_ts", _F64),
        ("refused_total", _I32), ("promise_open", _I32), ("first_event_ts", _F64), ("last_settled_ts", _F64),
        ("phone_failed_total", _I32), ("phone_through_total", _I32), ("last_phone_failed", _I32),
    ]


def mediator_performance_columns() -> list[tuple[str, pa.DataType]]:
    """Feature columns of ``mediator_performance``."""
    return [
        ("mediator_cases_total", _I32), ("mediator_cases_30d", _I32), ("mediator_reached_cases_total", _I32),
        ("mediator_reached_cases_30d", _I32), ("mediator_settled_cases_total", _I32),
        ("mediator_settled_cases_30d", _I32), ("mediator_actions_30d", _I32), ("mediator_settle_rate", _F64),
        ("mediator_settle_rate_30d", _F64),
    ]


SCHEMAS: dict[str, Callable[[], pa.Schema]] = {
    "contact_repair": lambda: _schema(("debtor_key", _STR), contact_repair_columns()),
    "repayment_capacity": lambda: _schema(("debtor_key", _STR), repayment_capacity_columns()),
    "litigation": lambda: _schema(("debtor_key", _STR), litigation_columns()),
    "case_state": lambda: _schema(("case_pk", _I64), case_state_columns()),
    "mediator_performance": lambda: _schema(("mediator_id", _STR), mediator_performance_columns()),
}


# --------------------------------------------------------------------------- debtor-level tables


@dataclass
class _Sorted:
    """Source rows sorted by (entity, availability), with entity codes and availability."""

    frame: pd.DataFrame
    ent: np.ndarray  # int64 entity code per row
    avail: np.ndarray  # float seconds
    keys: np.ndarray  # entity label per code
    rows: np.ndarray  # positions of the output rows (last row per (entity, availability))


def _sort_source(frame: pd.DataFrame, entity: str, own_time: np.ndarray, as_of_s: float) -> _Sorted:
    received = _epoch_seconds(frame["received_at"]) if len(frame) else np.zeros(0)
    avail = _availability(own_time, received)
    known = avail <= as_of_s
    frame, avail, own_time = frame.loc[known].reset_index(drop=True), avail[known], own_time[known]
    codes, labels = pd.factorize(frame[entity], sort=True)
    ent = codes.astype(np.int64)
    order = np.lexsort((own_time, avail, ent))  # ties in availability: by own time
    frame = frame.iloc[order].reset_index(drop=True)
    frame["_own"] = own_time[order]
    ent, avail = ent[order], avail[order]
    rows = np.flatnonzero(_last_of_runs(ent * _SPAN + avail.astype(np.int64)))
    return _Sorted(frame, ent, avail, np.asarray(labels, dtype=object), rows)


def _latest_by_own_time(src: _Sorted) -> np.ndarray:
    """For every source row (in availability order): the row, among those of its entity known by
    then, with the latest own time (its date / checked_at), as a position in availability order."""
    by_own = np.lexsort((src.frame["_own"].to_numpy(), src.ent))  # positions in (entity, own time) order
    rank = np.empty(len(by_own), dtype=np.int64)
    rank[by_own] = np.arange(len(by_own))
    best_rank = np.maximum.accumulate(rank) if len(rank) else rank  # entity blocks ascend in both orders
    return by_own[best_rank]


def build_contact_repair(frame: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Contact-repair features per debtor and availability time from ``contact_checks`` rows
    (columns debtor_key, checked_at, phone_status, repaired_numbers, received_at)."""
    src = _sort_source(frame, "debtor_key", _epoch_seconds(frame["checked_at"]), as_of_s)
    f, ent = src.frame, src.ent
    block_start = np.searchsorted(ent, ent, side="left")

    def running(indicator: np.ndarray) -> np.ndarray:
        total = np.cumsum(indicator.astype(np.int64))
        before = np.where(block_start > 0, total[np.maximum(block_start - 1, 0)], 0)
        return (total - before).astype(np.int32)

    status = f["phone_status"].to_numpy(dtype=object)
    repaired = f["repaired_numbers"].fillna(0).to_numpy(dtype=np.int64)
    success = repaired > 0
    latest = _latest_by_own_time(src)
    own = f["_own"].to_numpy()
    repair_time = np.where(success, own, -1.0)
    # latest successful repair known so far: cummax of (time + 1), 0 = none
    last_repair = _grouped_cummax(ent, np.where(success, repair_time + 1, 0).astype(np.int64)) - 1
    out = pd.DataFrame({"debtor_key": src.keys[ent]})
    out["checks_total"] = running(np.ones(len(f), dtype=bool))
    for s in ("active", "suspended", "vacant", "unknown"):
        out[f"checks_{s}"] = running(status == s)
    out["repaired_numbers_total"] = running(repaired) if len(f) else np.zeros(0, np.int32)
    out["repair_successes"] = running(success)
    for s in PHONE_STATUS_VALUES:
        out[f"last_status_{s}"] = (status[latest] == s).astype(np.int32)
    out["last_check_ts"] = own[latest]
    out["last_repair_ts"] = np.where(last_repair >= 0, last_repair.astype(np.float64), np.nan)
    rows = src.rows
    return _stamp_table(out.iloc[rows].reset_index(drop=True), src.avail[rows], SCHEMAS["contact_repair"]())


def _snapshot_table(frame: pd.DataFrame, as_of_s: float, shape: Callable[[pd.DataFrame], pd.DataFrame],
                    schema: pa.Schema) -> pa.Table:
    """Latest snapshot (by its as_of date) among those known, at each availability time."""
    src = _sort_source(frame, "debtor_key", _date_seconds(frame["as_of"]), as_of_s)
    latest = _latest_by_own_time(src)
    chosen = src.frame.iloc[latest[src.rows]].reset_index(drop=True)
    out = shape(chosen)
    out.insert(0, "debtor_key", src.keys[src.ent[src.rows]])
    return _stamp_table(out, src.avail[src.rows], schema)


def _as_float(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _as_flag(series: pd.Series) -> np.ndarray:
    return series.fillna(False).astype(bool).to_numpy().astype(np.int32)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def build_repayment_capacity(frame: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Capacity features per debtor and availability time from ``capacity_snapshots`` rows."""

    def shape(chosen: pd.DataFrame) -> pd.DataFrame:
        income = _as_float(chosen["monthly_income"])
        debt = _as_float(chosen["other_debt"])
        spend = _as_float(chosen["monthly_spend"])
        employment = chosen["employment"].fillna("unknown").to_numpy(dtype=object)
        out = pd.DataFrame({"monthly_income": income, "income_stability": _as_float(chosen["income_stability"])})
        for e in EMPLOYMENT_VALUES:
            out[f"employment_{e}"] = (employment == e).astype(np.int32)
        out["social_insurance_months"] = _as_float(chosen["social_insurance_months"])
        out["has_property"] = _as_flag(chosen["has_property"])
        out["has_vehicle"] = _as_flag(chosen["has_vehicle"])
        out["other_debt"] = debt
        out["monthly_spend"] = spend
        out["debt_to_income"] = _ratio(debt, income)
        out["spend_to_income"] = _ratio(spend, income)
        out["capacity_as_of_ts"] = chosen["_own"].to_numpy()
        return out

    return _snapshot_table(frame, as_of_s, shape, SCHEMAS["repayment_capacity"]())


def build_litigation(frame: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Litigation features per debtor and availability time from ``litigation_records`` rows."""

    def shape(chosen: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame()
        for name in ("defendant_cases", "enforcement_cases", "terminated_no_assets"):
            out[name] = chosen[name].fillna(0).to_numpy().astype(np.int32)
        out["dishonest_listed"] = _as_flag(chosen["dishonest_listed"])
        out["consumption_restricted"] = _as_flag(chosen["consumption_restricted"])
        out["litigation_as_of_ts"] = chosen["_own"].to_numpy()
        return out

    return _snapshot_table(frame, as_of_s, shape, SCHEMAS["litigation"]())


# --------------------------------------------------------------------------- case_state


class _Vocabulary:
    """Strings of a small vocabulary as integer codes, so that membership tests are table lookups
    (``np.isin`` on object arrays costs a hash per row and value)."""

    def __init__(self, values: np.ndarray) -> None:
        self.codes, self.labels = pd.factorize(values)

    def isin(self, members: tuple[str, ...] | str) -> np.ndarray:
        wanted = {members} if isinstance(members, str) else set(members)
        table = np.array([label in wanted for label in self.labels] + [False], dtype=bool)
        return table[self.codes]  # code -1 (missing) reads the trailing False


def _event_codes(action_values: np.ndarray, outcome_values: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over events: per channel, reached/settled outcomes, stage rank."""
    action, outcome = _Vocabulary(action_values), _Vocabulary(outcome_values)
    masks = {ch: action.isin(actions) for ch, actions in CHANNELS.items()}
    attempt = np.zeros(len(action_values), dtype=bool)
    for mask in masks.values():
        attempt |= mask
    reached = outcome.isin(REACHED_OUTCOMES)
    settled = outcome.isin(SETTLED_OUTCOMES)
    rank = np.where(attempt, 1, 0)
    rank = np.where(reached | outcome.isin("promise_to_pay"), 2, rank)
    formalised = action.isin(_AGREEMENT_ACTIONS) & ~outcome.isin(("failed", "refused", "disputed"))
    rank = np.where(outcome.isin(("agreement", "partial_paid")) | formalised, 3, rank)
    rank = np.where(action.isin(_LITIGATION_ACTIONS) & outcome.isin(_LITIGATION_OUTCOMES), 4, rank)
    rank = np.where(outcome.isin("paid"), 5, rank)
    rank = np.where(action.isin("pre_check_write_off") & outcome.isin("certificate_issued"), 6, rank)
    rank = np.where(action.isin("close"), 7, rank)
    return {"attempt": attempt, "reached": reached, "settled": settled, "rank": rank.astype(np.int64),
            "delivered": outcome.isin("delivered"), "promise": outcome.isin("promise_to_pay"),
            "disputed": outcome.isin("disputed"), "opted_out": outcome.isin("opted_out"),
            "refused": outcome.isin("refused"), "failed": outcome.isin("failed"),
            "through": outcome.isin(("delivered", "sent", "no_answer")),
            "paid": outcome.isin(("paid", "partial_paid")), **masks}


def build_case_state(cases: pd.DataFrame, events: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Case-state rows for a chunk of cases.

    ``cases``: case_pk, creditor_kind, product, debtor_type, has_phone, principal, interest,
    penalty, fees, annual_rate, in_scope, overdue_since, last_payment_date, received_at. ``events``: case_pk, at,
    action, outcome, amount, received_at (events of these cases only). One row per case and
    change point: the case becoming known, every event becoming known, and every event leaving
    a 1-, 7- or 30-day window, up to ``as_of``.
    """
    cases = cases.sort_values("case_pk", kind="stable").reset_index(drop=True)
    pks = cases["case_pk"].to_numpy(dtype=np.int64)
    n_cases = len(pks)
    overdue = _date_seconds(cases["overdue_since"])
    case_received = _epoch_seconds(cases["received_at"])

    at = _epoch_seconds(events["at"])
    avail = _availability(at, _epoch_seconds(events["received_at"]))
    ev_case = np.searchsorted(pks, events["case_pk"].to_numpy(dtype=np.int64))
    # The case is known from its import, or (a historical backfill) from its overdue date; its
    # own events prove it existed when they became known (the ledger keeps only the last version).
    first_event = np.full(n_cases, np.inf)
    np.minimum.at(first_event, ev_case, avail)
    case_avail = np.fmin(np.where(np.isnan(case_received), overdue, case_received), first_event)
    case_avail = np.where(np.isfinite(case_avail), case_avail, overdue)
    known_case = case_avail <= as_of_s
    known_event = (avail <= as_of_s) & known_case[ev_case]
    ev_case, at, avail = ev_case[known_event], at[known_event], avail[known_event]
    action = events["action"].to_numpy(dtype=object)[known_event]
    outcome = events["outcome"].to_numpy(dtype=object)[known_event]
    amount = pd.to_numeric(events["amount"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)[known_event]

    # Change points, clipped to the case's availability, deduplicated per case.
    points = [avail, *[at + w * DAY for w in WINDOWS_DAYS]]
    cp_case = np.concatenate([ev_case] * len(points) + [np.flatnonzero(known_case)])
    cp_time = np.concatenate([*points, case_avail[known_case]])
    cp_time = np.maximum(cp_time, case_avail[cp_case])
    keep = cp_time <= as_of_s
    query = _sorted_unique(cp_case[keep].astype(np.int64) * _SPAN + cp_time[keep].astype(np.int64))
    q_case = query // _SPAN
    q_time = query - q_case * _SPAN

    codes = _event_codes(action, outcome)
    out: dict[str, object] = {"case_pk": pks[q_case], TIMESTAMP_FIELD: q_time}
    kind = cases["creditor_kind"].fillna("other").to_numpy(dtype=object)
    product = cases["product"].to_numpy(dtype=object)
    principal, interest, penalty, fees = (_as_float(cases[c]) for c in ("principal", "interest", "penalty", "fees"))
    kind_code = np.select([kind == c for c in CREDITOR_TYPES], range(len(CREDITOR_TYPES)),
                          CREDITOR_TYPES.index("other"))
    out["creditor_type"] = _vocabulary(CREDITOR_TYPES, kind_code[q_case])
    for c in CREDITOR_TYPES:
        out[f"creditor_{c}"] = (kind == c).astype(np.int32)[q_case]
    for p in PRODUCT_TYPES:
        out[f"product_{p}"] = (product == p).astype(np.int32)[q_case]
    out["debtor_company"] = (cases["debtor_type"].to_numpy(dtype=object) == "company").astype(np.int32)[q_case]
    for name, values in (("principal", principal), ("interest", interest), ("penalty", penalty), ("fees", fees)):
        out[name] = values[q_case]
    out["total_claim"] = np.round(principal + interest + penalty + fees, 2)[q_case]
    out["annual_rate"] = _as_float(cases["annual_rate"])[q_case]
    out["in_scope"] = _as_flag(cases["in_scope"])[q_case]
    out["has_phone"] = _as_flag(cases["has_phone"])[q_case]
    out["overdue_since_ts"] = overdue.astype(np.int64)[q_case]
    # The debtor's last repayment before the default (a case-file fact): whether there was one, and
    # how long before the overdue date.
    last_payment = _date_seconds(cases["last_payment_date"])
    out["has_last_payment"] = (~np.isnan(last_payment)).astype(np.int32)[q_case]
    out["last_payment_gap_days"] = ((overdue - last_payment) / DAY)[q_case]

    # As-of lookups over events sorted by (case, availability).
    order = np.lexsort((at, avail, ev_case))
    s_case, s_avail, s_at = ev_case[order], avail[order], at[order]
    found = _asof(s_case, s_avail, q_case, q_time)
    stage = _grouped_cummax(s_case, codes["rank"][order])
    stage_code = _take(stage, found, 0).astype(np.int32)
    out["stage_code"] = stage_code
    out["stage"] = _vocabulary(STAGES, stage_code)

    counter = _Counter(ev_case, avail, query)
    ends = {w: _window_end(at, avail, w) for w in WINDOWS_DAYS}
    repaired = codes["reached"] | codes["delivered"]
    for ch in CHANNELS:
        success = codes[ch] & (repaired if ch == "repair" else codes["reached"])
        for label, mask in (("attempts", codes[ch]), (_success_label(ch), success)):
            for w in WINDOWS_DAYS:
                out[f"{ch}_{label}_{w}d"] = counter.window(mask, ends[w])
    attempts, reached = codes["attempt"], codes["reached"]
    out["reached_7d"] = counter.window(reached, ends[7])
    out["reached_30d"] = counter.window(reached, ends[30])
    for name, mask in (("attempts_total", attempts), ("reached_total", reached),
                       ("promises_total", codes["promise"]), ("settled_total", codes["settled"]),
                       ("disputed_total", codes["disputed"]), ("opted_out_total", codes["opted_out"]),
                       ("refused_total", codes["refused"])):
        out[name] = counter.total(mask)
    out["ever_reached"] = (np.asarray(out["reached_total"]) > 0).astype(np.int32)

    paid = codes["paid"] & ~np.isnan(amount)
    cents = np.where(paid, np.round(np.nan_to_num(amount) * 100), 0).astype(np.int64)[order]
    running = np.cumsum(cents)
    block_start = np.searchsorted(s_case, s_case, side="left")
    before = np.where(block_start > 0, running[np.maximum(block_start - 1, 0)], 0)
    out["paid_amount_total"] = _take(running - before, found, 0).astype(np.float64) / 100

    for name, mask in (("last_reached_ts", reached), ("last_attempt_ts", attempts),
                       ("last_settled_ts", codes["settled"])):
        latest = _grouped_cummax(s_case, np.where(mask[order], s_at + 1, 0).astype(np.int64)) - 1
        value = _take(latest, found, -1).astype(np.float64)
        out[name] = np.where(value >= 0, value, np.nan)
    # An open promise: the debtor's latest answer (by ``at``) was a promise to pay. The low bit of
    # 2 * at + promise carries the answer of the latest contact through the running maximum.
    answer = np.where(reached[order], 2 * s_at.astype(np.int64) + 2 + codes["promise"][order], 0)
    latest_answer = _take(_grouped_cummax(s_case, answer.astype(np.int64)), found, 0)
    out["promise_open"] = (latest_answer % 2).astype(np.int32)
    # The phone line: messages and calls that could not get through (failed) say the number does
    # not work; those delivered or rung without an answer say it works.
    phone = codes["sms"] | codes["voice"]
    out["phone_failed_total"] = counter.total(phone & codes["failed"])
    out["phone_through_total"] = counter.total(phone & codes["through"])
    last_phone = np.where(phone[order], 2 * s_at.astype(np.int64) + 2 + codes["failed"][order], 0)
    latest_phone = _take(_grouped_cummax(s_case, last_phone.astype(np.int64)), found, 0)
    out["last_phone_failed"] = (latest_phone % 2).astype(np.int32)
    # First event known: the running maximum of (SPAN - 1 - at) is the running minimum of ``at``.
    earliest = (_SPAN - 1) - _grouped_cummax(s_case, (_SPAN - 1) - s_at.astype(np.int64))
    first = _take(earliest, found, -1).astype(np.float64)
    out["first_event_ts"] = np.where(found.found, first, np.nan)

    return _to_arrow(out, SCHEMAS["case_state"]())


# --------------------------------------------------------------------------- mediator_performance


def _distinct_active(pair: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the intervals [start, end) of each (mediator, case) pair into disjoint ones, so that
    counting intervals counts distinct cases. Returns (pair index, start, end) of merged ones."""
    if len(pair) == 0:
        return pair, start, end
    order = np.lexsort((start, pair))
    pair, start, end = pair[order], start[order], end[order]
    reach = _grouped_cummax(pair, end.astype(np.int64))  # furthest end so far within the pair
    new = np.ones(len(pair), dtype=bool)
    new[1:] = (pair[1:] != pair[:-1]) | (start[1:] > reach[:-1])
    last = np.r_[np.flatnonzero(new)[1:] - 1, len(pair) - 1]
    return pair[new], start[new], reach[last].astype(np.float64)


def build_mediator_performance(events: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Mediator features per mediator and change point from events whose actor is a mediator
    (columns case_pk, actor, at, outcome, received_at)."""
    at = _epoch_seconds(events["at"])
    avail = _availability(at, _epoch_seconds(events["received_at"]))
    known = avail <= as_of_s
    frame = events.loc[known].reset_index(drop=True)
    at, avail = at[known], avail[known]
    codes, labels = pd.factorize(frame["actor"], sort=True)
    med = codes.astype(np.int64)
    outcome = frame["outcome"].to_numpy(dtype=object)
    case_pk = frame["case_pk"].to_numpy(dtype=np.int64)

    thirty = at + 30 * DAY
    points_med = np.concatenate([med, med])
    points_time = np.concatenate([avail, thirty])
    keep = points_time <= as_of_s
    query = _sorted_unique(points_med[keep] * _SPAN + points_time[keep].astype(np.int64))
    q_med = query // _SPAN
    q_time = query - q_med * _SPAN

    out: dict[str, object] = {"mediator_id": np.asarray(labels, dtype=object)[q_med], TIMESTAMP_FIELD: q_time}
    everything = np.ones(len(med), dtype=bool)
    outcomes = _Vocabulary(outcome)
    subsets = {"cases": everything, "reached_cases": outcomes.isin(REACHED_OUTCOMES),
               "settled_cases": outcomes.isin(SETTLED_OUTCOMES)}
    # Pair = (mediator, case): encode as one integer, remember its mediator.
    pair_codes, pair_index = np.unique(med * np.int64(1 << 40) + case_pk, return_inverse=True)
    pair_med = pair_codes >> np.int64(40)
    for name, mask in subsets.items():
        p = pair_index[mask]
        first = np.full(len(pair_codes), np.inf)
        np.minimum.at(first, p, avail[mask])
        seen = np.isfinite(first)
        out[f"mediator_{name}_total"] = _Counter(pair_med[seen], first[seen], query).total(
            np.ones(int(seen.sum()), dtype=bool))
        m_pair, m_start, m_end = _distinct_active(p, avail[mask], _window_end(at[mask], avail[mask], 30))
        out[f"mediator_{name}_30d"] = _Counter(pair_med[m_pair], m_start, query).window(
            np.ones(len(m_pair), dtype=bool), m_end)
    out["mediator_actions_30d"] = _Counter(med, avail, query).window(everything, _window_end(at, avail, 30))
    counts = {name: np.asarray(out[name], dtype=np.float64)
              for name in ("mediator_settled_cases_total", "mediator_cases_total", "mediator_settled_cases_30d",
                           "mediator_cases_30d")}
    out["mediator_settle_rate"] = _ratio(counts["mediator_settled_cases_total"], counts["mediator_cases_total"])
    out["mediator_settle_rate_30d"] = _ratio(counts["mediator_settled_cases_30d"], counts["mediator_cases_30d"])
    return _to_arrow(out, SCHEMAS["mediator_performance"]())


# --------------------------------------------------------------------------- the build


_CASES_SQL = """
SELECT c.id AS case_pk, cr.kind AS creditor_kind, c.product, c.debtor_type,
       CASE WHEN c.phone_key IS NULL THEN 0 ELSE 1 END AS has_phone,
       CAST(c.principal AS FLOAT) AS principal, CAST(c.interest AS FLOAT) AS interest,
       CAST(c.penalty AS FLOAT) AS penalty, CAST(c.fees AS FLOAT) AS fees,
       CAST(c.annual_rate AS FLOAT) AS annual_rate, c.in_scope, c.overdue_since, c.last_payment_date,
       c.received_at
FROM cases c JOIN creditors cr ON cr.id = c.creditor_id
WHERE c.id >= :lo AND c.id < :hi
"""
_EVENTS_SQL = """
SELECT case_pk, at, action, outcome, CAST(amount AS FLOAT) AS amount, received_at
FROM events WHERE case_pk >= :lo AND case_pk < :hi
"""


_CHECKS_SQL = "SELECT debtor_key, checked_at, phone_status, repaired_numbers, received_at FROM contact_checks"
_CAPACITY_SQL = """
SELECT debtor_key, as_of, CAST(monthly_income AS FLOAT) AS monthly_income, income_stability, employment,
       social_insurance_months, has_property, has_vehicle, CAST(other_debt AS FLOAT) AS other_debt,
       CAST(monthly_spend AS FLOAT) AS monthly_spend, received_at
FROM capacity_snapshots
"""
_LITIGATION_SQL = """
SELECT debtor_key, as_of, defendant_cases, enforcement_cases, terminated_no_assets, dishonest_listed,
       consumption_restricted, received_at
FROM litigation_records
"""
_MEDIATOR_EVENTS_SQL = "SELECT case_pk, actor, at, outcome, received_at FROM events WHERE actor <> 'system'"

# debtor-level and mediator-level tables: (table, query, builder, entity column)
_WHOLE_TABLES: tuple[tuple[str, str, Callable[[pd.DataFrame, float], pa.Table], str], ...] = (
    ("contact_repair", _CHECKS_SQL, build_contact_repair, "debtor_key"),
    ("repayment_capacity", _CAPACITY_SQL, build_repayment_capacity, "debtor_key"),
    ("litigation", _LITIGATION_SQL, build_litigation, "debtor_key"),
    ("mediator_performance", _MEDIATOR_EVENTS_SQL, build_mediator_performance, "mediator_id"),
)


def latest_path(settings: Settings, table: str) -> Path:
    """Parquet file of each entity's last row of one offline table (what the online store holds
    after materialising up to the build's ``as_of``): ``<table>.latest.parquet``."""
    return offline_dir(settings) / f"{table}.latest.parquet"


def last_per_entity(table: pa.Table, entity: str) -> pa.Table:
    """Each entity's row with the latest ``event_timestamp`` (ties: the later row)."""
    if table.num_rows <= 1:
        return table
    table = table.sort_by([(entity, "ascending"), (TIMESTAMP_FIELD, "ascending")])
    keys = table[entity]
    changes = pc.not_equal(keys.slice(1), keys.slice(0, table.num_rows - 1)).to_numpy(zero_copy_only=False)
    return table.filter(np.append(changes, True))


def _case_state_part(engine: Engine, lo: int, hi: int, as_of_s: float) -> pa.Table | None:
    """``case_state`` rows of the cases with ids in [lo, hi), or None if there are none."""
    with engine.connect() as conn:
        cases = _read(conn, _CASES_SQL, {"lo": lo, "hi": hi})
        if cases.empty:
            return None
        events = _read(conn, _EVENTS_SQL, {"lo": lo, "hi": hi})
    table = build_case_state(cases, events, as_of_s)
    return table if table.num_rows else None


def _whole_table(engine: Engine, name: str, as_of_s: float) -> pa.Table:
    """One debtor- or mediator-level table, built from its whole source at once."""
    sql, builder = next((sql, builder) for table, sql, builder, _ in _WHOLE_TABLES if table == name)
    with engine.connect() as conn:
        source = _read(conn, sql)
    return builder(source, as_of_s)


_JOBS: dict[str, Callable[..., pa.Table | None]] = {"case_state": _case_state_part, "whole": _whole_table}
_ENGINES: dict[str, Engine] = {}


def _in_worker(settings: Settings, job: str, *args: object) -> pa.Table | None:
    """Run a build job in a worker process, on an engine kept for the process's lifetime."""
    from concord.db import make_engine

    engine = _ENGINES.get(settings.database_url)
    if engine is None:
        engine = _ENGINES[settings.database_url] = make_engine(settings, migrate=False)
    return _JOBS[job](engine, *args)


class _Inline:
    """Runs jobs at submission, in this process (small ledgers, or one CPU)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(self, _: Callable[..., object], settings: Settings, job: str, *args: object) -> Future[pa.Table | None]:
        future: Future[pa.Table | None] = Future()
        try:
            future.set_result(_JOBS[job](self.engine, *args))
        except BaseException as error:  # noqa: BLE001 - re-raised by result()
            future.set_exception(error)
        return future

    def shutdown(self, **_: object) -> None:
        """Nothing to stop."""


class _TableOutput:
    """An offline table and its ``.latest`` companion, each written atomically."""

    def __init__(self, settings: Settings, name: str, entity: str) -> None:
        schema = SCHEMAS[name]()
        self.name, self.entity, self.schema = name, entity, schema
        self.all = _Writer(offline_path(settings, name), schema)
        self.latest = _Writer(latest_path(settings, name), schema)

    def write(self, table: pa.Table | None, *, entity_sorted: bool = False) -> None:
        """Add rows of whole entities (no entity's rows are split across two calls)."""
        if table is None or not table.num_rows:
            return
        if entity_sorted:  # sorted by (entity, time) already: the last of each run
            keys = table[self.entity].to_numpy()
            last = table.filter(_last_of_runs(keys))
        else:
            last = last_per_entity(table, self.entity)
        self.all.write(table)
        self.latest.write(last)

    def close(self) -> tuple[Path, Path]:
        return self.all.close(), self.latest.close()

    def abort(self) -> None:
        self.all.abort()
        self.latest.abort()


def build_offline_tables(settings: Settings, as_of: dt.datetime | None = None, *, engine: Engine | None = None,
                         chunk_cases: int = CHUNK_CASES, workers: int | None = None) -> dict[str, Path]:
    """Write the five offline feature tables from the ledger, known at ``as_of`` (default now).

    Returns the parquet path of each table by name (``contact_repair``, ``repayment_capacity``,
    ``litigation``, ``case_state``, ``mediator_performance``) and writes, beside each, its
    ``.latest`` companion (each entity's last row, which materialisation reads) and
    ``manifest.json`` (the ``as_of``, row counts, seconds). Each file is replaced atomically.

    ``chunk_cases`` bounds memory: cases (and their events) are processed that many at a time.
    With ``PARALLEL_MIN_CHUNKS`` chunks or more, the chunks and the four other tables are built
    by ``workers`` processes (default: one per CPU), each reading the ledger itself; this process
    writes.
    """
    from concord.db import make_engine

    started = time.perf_counter()
    as_of_s = float(int(_utc(as_of).timestamp()))
    own_engine = engine is None
    engine = engine or make_engine(settings)
    with engine.connect() as conn:
        low, high = conn.execute(text("SELECT MIN(id), MAX(id) FROM cases")).one()
    ranges = [] if low is None else [(lo, lo + chunk_cases) for lo in range(int(low), int(high) + 1, chunk_cases)]
    jobs: list[tuple[str, tuple[object, ...]]] = [("whole", (name, as_of_s)) for name, *_ in _WHOLE_TABLES]
    jobs += [("case_state", (lo, hi, as_of_s)) for lo, hi in ranges]
    workers = workers or os.cpu_count() or 1
    url = engine.url.render_as_string(hide_password=False)
    parallel = workers > 1 and len(ranges) >= PARALLEL_MIN_CHUNKS and ":memory:" not in url
    pool: ProcessPoolExecutor | _Inline = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if parallel else _Inline(engine))
    worker_settings = dataclasses.replace(settings, database_url=url)
    outputs = {name: _TableOutput(settings, name, entity) for name, _, _, entity in _WHOLE_TABLES}
    outputs["case_state"] = _TableOutput(settings, "case_state", "case_pk")
    seconds: dict[str, float] = {}
    paths: dict[str, Path] = {}
    try:
        pending: deque[tuple[str, tuple[object, ...], Future[pa.Table | None]]] = deque()
        t0 = time.perf_counter()

        def consume() -> None:  # results in submission order: the case_state file stays sorted
            kind, job_args, future = pending.popleft()
            name = str(job_args[0]) if kind == "whole" else "case_state"
            outputs[name].write(future.result(), entity_sorted=kind == "case_state")
            if kind == "whole":
                paths[name] = outputs.pop(name).close()[0]
                seconds[name] = round(time.perf_counter() - t0, 2)

        for job, args in jobs:
            pending.append((job, args, pool.submit(_in_worker, worker_settings, job, *args)))
            while len(pending) > workers:  # at most one result waiting per worker: bounded memory
                consume()
        while pending:
            consume()
        paths["case_state"] = outputs.pop("case_state").close()[0]
        seconds["case_state"] = round(time.perf_counter() - t0, 2)
    except BaseException:
        for output in outputs.values():
            output.abort()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        if own_engine:
            engine.dispose()
    manifest = {
        "as_of": dt.datetime.fromtimestamp(as_of_s, dt.UTC).isoformat(),
        "built_at": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
        "workers": workers if parallel else 1,
        "table_seconds": seconds,
        "rows": {name: pq.ParquetFile(path).metadata.num_rows for name, path in paths.items()},
    }
    tmp = offline_dir(settings) / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, offline_dir(settings) / "manifest.json")
    return {name: paths[name] for name in TABLE_NAMES}
