"""Contact-history facts from the ledger's events: what the guardrails count, exactly.

For each case at its decision time, from the events known then (``at`` before the decision and
received by then) of every case of the same debtor:

- per contact channel of the catalogue, the debtor's attempts, unanswered attempts and connected
  ones (a reached-type outcome) on the decision's calendar day in Asia/Shanghai (``*_today``),
  attempts and connected ones in the 7 x 24 hours before it (``*_week``), and the case's own
  attempts so far (``*_attempts_ever``);
- ``opted_out_<channel>``: the debtor asked for no more contact on that channel;
- ``count_<action>``: how often the case saw each action; ``certificates_issued``;
- ``dispute_open``: the case's latest dispute (异议) is after its latest supervisor resolution;
- ``failed_streak``: phone attempts (sms, voice, mediator channels) in a row, most recent first,
  that failed (no working line).

Vectorised: a million cases with nine million events take seconds, not a loop per case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, func, or_, select

from concord import ledger
from concord.vocabulary import REACHED_OUTCOMES
from policies.catalogue import Catalogue
from policies.claims import DAY_S, local_day
from policies.facts import history_fact_names

PHONE_CHANNELS = ("sms", "voice", "mediator")
WEEK_S = 7 * DAY_S


def load_events(
    engine: Engine,
    as_of: dt.datetime,
    *,
    case_pks: Sequence[int] | None = None,
    debtor_keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Events known at ``as_of`` (``case_pk, debtor_key, at, action, outcome``), of the given cases
    or debtors (all when neither is given)."""
    events, cases = ledger.table(ledger.Event), ledger.table(ledger.Case)
    known = and_(events.c.at <= as_of, func.coalesce(events.c.received_at, events.c.at) <= as_of)
    query = (
        select(events.c.case_pk, cases.c.debtor_key, events.c.at, events.c.action, events.c.outcome)
        .join(cases, cases.c.id == events.c.case_pk)
        .where(known)
    )
    wanted = []
    if case_pks is not None:
        wanted.append(events.c.case_pk.in_([int(pk) for pk in case_pks]))
    if debtor_keys is not None:
        wanted.append(cases.c.debtor_key.in_([k for k in debtor_keys if k]))
    if wanted:
        query = query.where(or_(*wanted))
    with engine.connect() as connection:
        frame = pd.DataFrame(
            connection.execute(query).all(), columns=["case_pk", "debtor_key", "at", "action", "outcome"]
        )
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["debtor_key"] = frame["debtor_key"].fillna("").astype(str)
    return frame


def load_resolutions(engine: Engine, as_of: dt.datetime, case_pks: Sequence[int] | None = None) -> pd.DataFrame:
    """Supervisors' dispute resolutions known at ``as_of``: ``case_pk, resolved_at``."""
    table = ledger.table(ledger.DisputeResolution)
    query = select(table.c.case_pk, table.c.resolved_at).where(table.c.resolved_at <= as_of)
    if case_pks is not None:
        query = query.where(table.c.case_pk.in_([int(pk) for pk in case_pks]))
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).all(), columns=["case_pk", "resolved_at"])
    frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True)
    return frame


def _seconds(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values, utc=True).dt.as_unit("s").astype("int64").to_numpy().astype(np.float64)


def contact_facts(
    cases: pd.DataFrame, events: pd.DataFrame, catalogue: Catalogue, resolutions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """History facts for ``cases`` (``case_pk``, ``debtor_key``, ``decision_ts``), one row per case
    in the same order, from ``events`` (as :func:`load_events` returns them)."""
    n = len(cases)
    channels = catalogue.contact_channels
    targets = pd.DataFrame(
        {
            "row": np.arange(n),
            "target_pk": cases["case_pk"].to_numpy(np.int64),
            "debtor_key": cases["debtor_key"].fillna("").astype(str).to_numpy(),
            "decision_s": _seconds(cases["decision_ts"]),
        }
    )
    pairs = _pairs(targets, events)
    pairs = pairs[pairs["at_s"] < pairs["decision_s"]]
    actions = pd.Categorical(pairs["action"], categories=catalogue.names)
    action_code = actions.codes.astype(np.int64)
    known = action_code >= 0
    channel_of_action = np.array(
        [channels.index(a.channel) if a.contacts_someone and a.channel in channels else -1 for a in catalogue.actions]
    )
    channel = np.where(known, channel_of_action[np.maximum(action_code, 0)], -1)
    row = pairs["row"].to_numpy(np.int64)
    at, decision = pairs["at_s"].to_numpy(), pairs["decision_s"].to_numpy()
    # Outcomes compared as codes of their distinct values (not as a million strings); a missing one
    # (code -1) reads the appended "", which matches nothing.
    codes, kinds = pd.factorize(pairs["outcome"])
    kinds = np.append(np.asarray(kinds, dtype=object).astype(str), "")

    def outcome_in(*names: str) -> np.ndarray:
        return np.isin(kinds, names)[codes]

    connected = outcome_in(*REACHED_OUTCOMES)
    today = local_day(at) == local_day(decision)
    week = at > decision - WEEK_S
    own = pairs["case_pk"].to_numpy(np.int64) == pairs["target_pk"].to_numpy(np.int64)
    on_channel = channel >= 0
    out: dict[str, np.ndarray] = {}
    width = len(channels)

    def per_channel(mask: np.ndarray) -> np.ndarray:
        keep = mask & on_channel
        return np.bincount(row[keep] * width + channel[keep], minlength=n * width).reshape(n, width)

    counts = {
        "attempts_today": per_channel(today),
        "connected_today": per_channel(today & connected),
        "attempts_week": per_channel(week),
        "connected_week": per_channel(week & connected),
        "attempts_ever": per_channel(own),
        "opted": per_channel(outcome_in("opted_out")),
    }
    for k, name in enumerate(channels):
        for kind in ("attempts_today", "connected_today", "attempts_week", "connected_week", "attempts_ever"):
            out[f"{name}_{kind}"] = counts[kind][:, k].astype(np.float64)
        out[f"{name}_unanswered_today"] = out[f"{name}_attempts_today"] - out[f"{name}_connected_today"]
        out[f"opted_out_{name}"] = (counts["opted"][:, k] > 0).astype(np.float64)
    keep = own & known
    by_action = np.bincount(
        row[keep] * len(catalogue.names) + action_code[keep], minlength=n * len(catalogue.names)
    ).reshape(n, -1)
    for j, name in enumerate(catalogue.names):
        out[f"count_{name}"] = by_action[:, j].astype(np.float64)
    out["certificates_issued"] = np.bincount(row[own & outcome_in("certificate_issued")], minlength=n).astype(
        np.float64
    )
    disputed = own & outcome_in("disputed")
    out["dispute_open"] = _dispute_open(n, row[disputed], at[disputed], targets, resolutions)
    phone = own & np.isin(channel, [channels.index(c) for c in PHONE_CHANNELS if c in channels])
    out["failed_streak"] = _failed_streak(n, row[phone], at[phone], outcome_in("failed")[phone])
    frame = pd.DataFrame(out, index=cases.index)
    return frame[[name for name in history_fact_names(channels, catalogue.names) if name in frame.columns]]


def _pairs(targets: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Each event paired with every target case it counts for: the cases of the same debtor (or
    the same case, when the debtor is unknown). Debtors are joined as integer codes."""
    keys = targets["debtor_key"].to_numpy()
    known = keys != ""
    vocabulary = pd.Index(pd.unique(keys[known]))
    event_keys = events["debtor_key"].fillna("").astype(str).to_numpy()
    base = pd.DataFrame(
        {
            "case_pk": events["case_pk"].to_numpy(np.int64),
            "at_s": _seconds(events["at"]),
            "action": events["action"],
            "outcome": events["outcome"],
            "debtor": vocabulary.get_indexer(event_keys),
        }
    )
    by_debtor = targets[known].assign(debtor=vocabulary.get_indexer(keys[known])).drop(columns="debtor_key")
    by_case = targets[~known].drop(columns="debtor_key")
    joined = [
        base[base["debtor"] >= 0].merge(by_debtor, on="debtor", how="inner"),
        base.merge(by_case, left_on="case_pk", right_on="target_pk", how="inner"),
    ]
    return pd.concat(joined, ignore_index=True)


def _dispute_open(
    n: int, rows: np.ndarray, at: np.ndarray, targets: pd.DataFrame, resolutions: pd.DataFrame | None
) -> np.ndarray:
    last_dispute = np.full(n, -np.inf)
    np.maximum.at(last_dispute, rows, at)
    last_resolution = np.full(n, -np.inf)
    if resolutions is not None and len(resolutions):
        frame = targets[["row", "target_pk", "decision_s"]].merge(
            resolutions.assign(resolved_s=_seconds(resolutions["resolved_at"])), left_on="target_pk", right_on="case_pk"
        )
        frame = frame[frame["resolved_s"] <= frame["decision_s"]]
        np.maximum.at(last_resolution, frame["row"].to_numpy(np.int64), frame["resolved_s"].to_numpy())
    return (last_dispute > last_resolution).astype(np.float64)


def _failed_streak(n: int, rows: np.ndarray, at: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """Per case, how many of its latest phone attempts in a row failed."""
    order = np.lexsort((at, rows))
    rows, failed = rows[order], failed[order]
    position = np.arange(rows.size)
    last_ok = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_ok, rows[~failed], position[~failed])
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, rows, position)
    first = np.full(n, rows.size, dtype=np.int64)
    np.minimum.at(first, rows, position)
    start = np.maximum(last_ok + 1, first)
    return np.where(last >= 0, last - start + 1, 0).astype(np.float64)
