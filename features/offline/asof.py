"""The offline build's shared as-of and window machinery: when a source row became known
(availability from ``received_at``), as-of lookups, window counters and entity-sorted sources.

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
    a 1-, 7- or 30-day window), so the step function is exact at any time.

Times are float epoch seconds throughout. Entities are integer codes; a query key is
``entity * SPAN + time``, so one sorted search serves every entity at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.offline.schemas import stamp_table

DAY = 86_400  # seconds
SHANGHAI_OFFSET = 8 * 3600  # seconds east of UTC; China has no daylight saving
SPAN = np.int64(1) << np.int64(34)  # seconds per entity block in composite sort keys (> year 2500)


# --------------------------------------------------------------------------- time helpers


def utc(moment: dt.datetime | None) -> dt.datetime:
    """Aware UTC; naive input is taken as UTC, None as now."""
    if moment is None:
        return dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Naive-UTC timestamps (text from SQLite, datetimes from PostgreSQL) as float epoch seconds,
    rounded up to the whole second; NaN where missing."""
    if len(values) == 0:
        return np.zeros(0)
    stamps = pd.to_datetime(values, format="ISO8601", utc=True)
    micros = stamps.to_numpy(dtype="datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
    out = np.ceil(micros)
    out[stamps.isna().to_numpy()] = np.nan
    return out


def date_seconds(values: pd.Series) -> np.ndarray:
    """Calendar dates as epoch seconds of their 00:00 in Asia/Shanghai; NaN where missing."""
    if len(values) == 0:
        return np.zeros(0)
    days = pd.to_datetime(values, format="ISO8601")
    out = days.to_numpy(dtype="datetime64[s]").astype(np.int64).astype(np.float64) - SHANGHAI_OFFSET
    out[days.isna().to_numpy()] = np.nan
    return out


def availability(own_time: np.ndarray, received: np.ndarray) -> np.ndarray:
    """When a row became known: max(own time, received_at); received_at NaN = own time."""
    return np.fmax(own_time, received)


# --------------------------------------------------------------------------- grouped numpy helpers


def last_of_runs(keys: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal sorted keys (the row to keep when several
    source rows become known at the same moment: the state after all of them)."""
    keep = np.ones(len(keys), dtype=bool)
    keep[:-1] = keys[1:] != keys[:-1]
    return keep


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array (sort-based: faster than np.unique here)."""
    keys = np.sort(keys)
    if len(keys) == 0:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


class ActiveCounter:
    """Counts, per query key (entity * SPAN + time), the items of the same entity that are active
    at that time: known (start <= t) and, for a window, not yet out of it (t < end).

    Items of earlier entities appear once among the starts and once among the ends below the
    query key and cancel out, so one global searchsorted serves every entity at once.
    """

    def __init__(self, ent: np.ndarray, start: np.ndarray, query: np.ndarray) -> None:
        self.base = ent.astype(np.int64) * SPAN
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
        ends = np.sort(self.base[mask] + (SPAN - 1))
        return (self._known(mask) - np.searchsorted(ends, self.query, side="right")).astype(np.int32)

    def window(self, mask: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Items known and with ``end`` (seconds, >= start) still ahead."""
        ends = np.sort(self.base[mask] + end[mask].astype(np.int64))
        return (self._known(mask) - np.searchsorted(ends, self.query, side="right")).astype(np.int32)


def window_end(at: np.ndarray, avail: np.ndarray, days: int) -> np.ndarray:
    """End of an event's contribution to an N-day window: at + N days, never before it is known."""
    return np.maximum(avail, at + days * DAY)


@dataclass
class Asof:
    """Rows of one entity-sorted source, and for each query key the last row known by then."""

    position: np.ndarray  # index into the (entity, availability)-sorted rows, -1 if none
    found: np.ndarray  # bool


def asof(ent_sorted: np.ndarray, avail_sorted: np.ndarray, q_ent: np.ndarray, q_time: np.ndarray) -> Asof:
    """For each query (entity, time): the last source row of that entity available at or before it."""
    keys = ent_sorted.astype(np.int64) * SPAN + avail_sorted.astype(np.int64)
    query = q_ent.astype(np.int64) * SPAN + q_time.astype(np.int64)
    pos = np.searchsorted(keys, query, side="right") - 1
    found = pos >= 0
    found[found] = ent_sorted[pos[found]] == q_ent[found]
    return Asof(np.where(found, pos, -1), found)


def grouped_cummax(ent_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running maximum of non-negative int64 ``values`` within each entity block (rows sorted by
    entity): the entity index in the high bits keeps blocks apart."""
    composite = ent_sorted.astype(np.int64) * SPAN + values.astype(np.int64)
    return np.maximum.accumulate(composite) - ent_sorted.astype(np.int64) * SPAN


def take(values: np.ndarray, at: Asof, fill: float | int) -> np.ndarray:
    """``values[position]`` where a row was found, ``fill`` elsewhere."""
    out = np.full(len(at.position), fill, dtype=np.result_type(values.dtype, type(fill)))
    out[at.found] = values[at.position[at.found]]
    return out


# --------------------------------------------------------------------------- entity-sorted sources


@dataclass
class SortedSource:
    """Source rows sorted by (entity, availability), with entity codes and availability."""

    frame: pd.DataFrame
    ent: np.ndarray  # int64 entity code per row
    avail: np.ndarray  # float seconds
    keys: np.ndarray  # entity label per code
    rows: np.ndarray  # positions of the output rows (last row per (entity, availability))


def sort_source(frame: pd.DataFrame, entity: str, own_time: np.ndarray, as_of_s: float) -> SortedSource:
    """The rows of ``frame`` known at ``as_of_s``, sorted by (entity, availability, own time); the
    own time is kept as column ``_own``."""
    received = epoch_seconds(frame["received_at"]) if len(frame) else np.zeros(0)
    avail = availability(own_time, received)
    known = avail <= as_of_s
    frame, avail, own_time = frame.loc[known].reset_index(drop=True), avail[known], own_time[known]
    codes, labels = pd.factorize(frame[entity], sort=True)
    ent = codes.astype(np.int64)
    order = np.lexsort((own_time, avail, ent))  # ties in availability: by own time
    frame = frame.iloc[order].reset_index(drop=True)
    frame["_own"] = own_time[order]
    ent, avail = ent[order], avail[order]
    rows = np.flatnonzero(last_of_runs(ent * SPAN + avail.astype(np.int64)))
    return SortedSource(frame, ent, avail, np.asarray(labels, dtype=object), rows)


def latest_by_own_time(src: SortedSource) -> np.ndarray:
    """For every source row (in availability order): the row, among those of its entity known by
    then, with the latest own time (its date / checked_at), as a position in availability order."""
    by_own = np.lexsort((src.frame["_own"].to_numpy(), src.ent))  # positions in (entity, own time) order
    rank = np.empty(len(by_own), dtype=np.int64)
    rank[by_own] = np.arange(len(by_own))
    best_rank = np.maximum.accumulate(rank) if len(rank) else rank  # entity blocks ascend in both orders
    return by_own[best_rank]


def snapshot_table(
    frame: pd.DataFrame, as_of_s: float, shape: Callable[[pd.DataFrame], pd.DataFrame], schema: pa.Schema
) -> pa.Table:
    """Latest snapshot (by its as_of date) among those known, at each availability time, per
    debtor; ``shape`` turns the chosen snapshot rows into the feature columns."""
    src = sort_source(frame, "debtor_key", date_seconds(frame["as_of"]), as_of_s)
    latest = latest_by_own_time(src)
    chosen = src.frame.iloc[latest[src.rows]].reset_index(drop=True)
    out = shape(chosen)
    out.insert(0, "debtor_key", src.keys[src.ent[src.rows]])
    return stamp_table(out, src.avail[src.rows], schema)
