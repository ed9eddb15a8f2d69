"""Labels, in one place, and the decision times they are measured from.

- **reachability**: within 14 days after a decision time, an attempt reached the debtor
  (outcome reached, refused, promise_to_pay, agreement, paid or partial_paid).
- **settlement**: within 90 days after a decision time, an agreement or a payment
  (agreement, paid, partial_paid).

Decision times are sampled from case histories: uniformly over the part of a case's life in
which it was open (from its first event until it was paid in full, written off or closed; a
case with an agreement is still worked, for its payments; where a case's history shows no
closing outcome, its first settlement ends it: nothing says it was still worked after that),
while it was being worked (an event in the last ``DORMANT_AFTER``: a history that simply stops
leaves a dormant case, not one awaiting a decision), and whose label window had fully passed by
the data cut-off ``as_of`` (no censored labels).

A decision at time ``t`` sees features known strictly before ``t`` (the Feast entity row's
``event_timestamp`` is ``t`` minus one second) and its label counts outcomes in ``[t, t +
horizon)``: the outcome of the action taken at ``t`` is what the decision is about.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Select, select

from concord import ledger
from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES


@dataclass(frozen=True)
class Label:
    """A label: its name, its window after the decision time and the outcomes that count."""

    name: str
    horizon: pd.Timedelta
    outcomes: tuple[str, ...]


REACHABILITY = Label("reachability", pd.Timedelta(days=14), REACHED_OUTCOMES)
SETTLEMENT = Label("settlement", pd.Timedelta(days=90), SETTLED_OUTCOMES)
LABELS = {label.name: label for label in (REACHABILITY, SETTLEMENT)}
CLOSING_OUTCOMES = ("closed", "certificate_issued", "paid")  # nothing is left to decide after these
DORMANT_AFTER = pd.Timedelta(days=30)  # no event for this long: the case is no longer being worked


def load_history(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cases (pk, creditor, case id, debtor pseudonym, creditor type) and their events (UTC).

    Read in partitions, the events' action and outcome kept as categoricals: at 9 million
    events this needs a fraction of the memory of one list of rows."""
    cases, creditors, events = ledger.table(ledger.Case), ledger.table(ledger.Creditor), ledger.table(ledger.Event)
    with engine.connect() as connection:
        case_frame = _read_frame(
            connection,
            select(
                cases.c.id.label("case_pk"),
                creditors.c.name.label("creditor"),
                cases.c.case_id,
                cases.c.debtor_key,
                creditors.c.kind.label("creditor_type"),
            ).join(creditors, creditors.c.id == cases.c.creditor_id),
        )
        event_frame = _read_frame(
            connection,
            select(events.c.case_pk, events.c.at, events.c.action, events.c.outcome),
            timestamps=("at",),
            categorical=("action", "outcome"),
        )
    return case_frame, event_frame.sort_values(["case_pk", "at"], kind="stable").reset_index(drop=True)


def _read_frame(
    connection: Connection,
    statement: Select,
    *,
    timestamps: tuple[str, ...] = (),
    categorical: tuple[str, ...] = (),
    partition_rows: int = 500_000,
) -> pd.DataFrame:
    """A query's rows as a DataFrame, read ``partition_rows`` at a time, the ``timestamps``
    columns as UTC and the ``categorical`` ones as categories."""
    columns = list(statement.selected_columns.keys())
    parts = []
    result = connection.execution_options(yield_per=partition_rows).execute(statement)
    for rows in result.partitions():
        part = pd.DataFrame(rows, columns=columns)
        for name in timestamps:
            part[name] = pd.to_datetime(part[name], utc=True)
        for name in categorical:
            part[name] = part[name].astype("category")
        parts.append(part)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c in timestamps else object) for c in columns})
    for name in categorical:  # one vocabulary for all partitions, so that concat keeps the dtype
        vocabulary = sorted(set().union(*(part[name].cat.categories for part in parts)))
        for part in parts:
            part[name] = part[name].cat.set_categories(vocabulary)
    return pd.concat(parts, ignore_index=True)


def _first(events: pd.DataFrame, outcomes: tuple[str, ...]) -> pd.Series:
    hits = events[events["outcome"].isin(outcomes)]
    return hits.groupby("case_pk")["at"].min()


def decision_times(
    cases: pd.DataFrame, events: pd.DataFrame, label: Label, as_of: dt.datetime, per_case: float = 3.0, seed: int = 0
) -> pd.DataFrame:
    """Sample decision times: about ``per_case`` per case while it was open and uncensored.

    Returns the entity rows Feast joins on (``case_pk``, ``debtor_key``, ``event_timestamp``,
    ``decision_ts``) plus ``creditor``, ``case_id`` and ``creditor_type``.
    """
    as_of_ts = pd.Timestamp(as_of).tz_convert("UTC") if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of, tz="UTC")
    start = events.groupby("case_pk")["at"].min()
    ended = _first(events, CLOSING_OUTCOMES).combine_first(_first(events, SETTLED_OUTCOMES))
    life = pd.DataFrame({"start": start}).join(ended.rename("end"))
    life["end"] = life["end"].fillna(as_of_ts).clip(upper=as_of_ts - label.horizon)
    life = life[life["end"] > life["start"]]
    rng = np.random.default_rng(seed)
    days = (life["end"] - life["start"]).dt.total_seconds() / 86_400
    # More samples for longer lives, about per_case on average, at least one.
    counts = np.maximum(1, rng.poisson(per_case * days / max(days.mean(), 1e-9)))
    repeated = life.loc[life.index.repeat(counts)]
    offsets = rng.random(len(repeated)) * (repeated["end"] - repeated["start"]).dt.total_seconds().to_numpy()
    points = pd.DataFrame(
        {
            "case_pk": repeated.index.to_numpy(),
            "event_timestamp": (repeated["start"] + pd.to_timedelta(offsets, unit="s")).dt.floor("s").to_numpy(),
        }
    )
    points = points[_since_last_event(points, events) <= DORMANT_AFTER.total_seconds()]
    points = points.merge(cases, on="case_pk", how="inner")
    points["decision_ts"] = pd.to_datetime(points.pop("event_timestamp"), utc=True)
    return with_feature_cut(points).sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def _since_last_event(points: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Seconds from each point's case's latest event at or before its ``event_timestamp`` (inf if none)."""
    scale = 10**12
    keys = np.sort(events["case_pk"].to_numpy(dtype=np.int64) * scale + epoch_seconds(events["at"]))
    query = points["case_pk"].to_numpy(dtype=np.int64) * scale + epoch_seconds(points["event_timestamp"])
    before = np.searchsorted(keys, query, side="right") - 1
    latest = keys[np.maximum(before, 0)]
    same_case = (before >= 0) & (latest // scale == query // scale)
    return np.where(same_case, (query - latest).astype(np.float64), np.inf)


def with_feature_cut(points: pd.DataFrame) -> pd.DataFrame:
    """Add ``event_timestamp`` = ``decision_ts`` - 1 s: features known strictly before the decision."""
    points = points.copy()
    points["decision_ts"] = pd.to_datetime(points["decision_ts"], utc=True)
    points["event_timestamp"] = points["decision_ts"] - pd.Timedelta(seconds=1)
    return points


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """UTC timestamps as whole seconds since 1970, whatever their resolution (ns, us, s)."""
    return pd.to_datetime(values, utc=True).dt.as_unit("s").astype("int64").to_numpy()


def attach_labels(points: pd.DataFrame, events: pd.DataFrame, label: Label) -> pd.Series:
    """1 where an outcome of ``label`` happened in [decision_ts, decision_ts + horizon)."""
    hits = events.loc[events["outcome"].isin(label.outcomes), ["case_pk", "at"]].sort_values(["case_pk", "at"])
    if hits.empty:
        return pd.Series(0, index=points.index, name=label.name)
    # Encode (case, time) as one sortable number so one searchsorted serves every case.
    scale = 10**12
    keys = hits["case_pk"].to_numpy(dtype=np.int64) * scale + epoch_seconds(hits["at"])
    t = epoch_seconds(points["decision_ts"])
    base = points["case_pk"].to_numpy(dtype=np.int64) * scale
    after = np.searchsorted(keys, base + t, side="left")
    until = np.searchsorted(keys, base + t + int(label.horizon.total_seconds()), side="left")
    return pd.Series((until > after).astype(int), index=points.index, name=label.name)
