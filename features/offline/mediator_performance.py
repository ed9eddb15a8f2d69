"""The ``mediator_performance`` offline table: per mediator and change point, the distinct cases
worked, reached and settled (in total and in the last 30 days), actions and settlement rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES
from features.offline.asof import (
    DAY,
    SPAN,
    ActiveCounter,
    availability,
    epoch_seconds,
    grouped_cummax,
    sorted_unique,
    window_end,
)
from features.offline.schemas import SCHEMAS, TIMESTAMP_FIELD, Vocabulary, ratio, to_arrow


def _distinct_active(pair: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the intervals [start, end) of each (mediator, case) pair into disjoint ones, so that
    counting intervals counts distinct cases. Returns (pair index, start, end) of merged ones."""
    if len(pair) == 0:
        return pair, start, end
    order = np.lexsort((start, pair))
    pair, start, end = pair[order], start[order], end[order]
    reach = grouped_cummax(pair, end.astype(np.int64))  # furthest end so far within the pair
    new = np.ones(len(pair), dtype=bool)
    new[1:] = (pair[1:] != pair[:-1]) | (start[1:] > reach[:-1])
    last = np.r_[np.flatnonzero(new)[1:] - 1, len(pair) - 1]
    return pair[new], start[new], reach[last].astype(np.float64)


def build_mediator_performance(events: pd.DataFrame, as_of_s: float) -> pa.Table:
    """Mediator features per mediator and change point from events whose actor is a mediator
    (columns case_pk, actor, at, outcome, received_at)."""
    at = epoch_seconds(events["at"])
    avail = availability(at, epoch_seconds(events["received_at"]))
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
    query = sorted_unique(points_med[keep] * SPAN + points_time[keep].astype(np.int64))
    q_med = query // SPAN
    q_time = query - q_med * SPAN

    out: dict[str, object] = {"mediator_id": np.asarray(labels, dtype=object)[q_med], TIMESTAMP_FIELD: q_time}
    everything = np.ones(len(med), dtype=bool)
    outcomes = Vocabulary(outcome)
    subsets = {
        "cases": everything,
        "reached_cases": outcomes.isin(REACHED_OUTCOMES),
        "settled_cases": outcomes.isin(SETTLED_OUTCOMES),
    }
    # Pair = (mediator, case): encode as one integer, remember its mediator.
    pair_codes, pair_index = np.unique(med * np.int64(1 << 40) + case_pk, return_inverse=True)
    pair_med = pair_codes >> np.int64(40)
    for name, mask in subsets.items():
        p = pair_index[mask]
        first = np.full(len(pair_codes), np.inf)
        np.minimum.at(first, p, avail[mask])
        seen = np.isfinite(first)
        out[f"mediator_{name}_total"] = ActiveCounter(pair_med[seen], first[seen], query).total(
            np.ones(int(seen.sum()), dtype=bool)
        )
        m_pair, m_start, m_end = _distinct_active(p, avail[mask], window_end(at[mask], avail[mask], 30))
        out[f"mediator_{name}_30d"] = ActiveCounter(pair_med[m_pair], m_start, query).window(
            np.ones(len(m_pair), dtype=bool), m_end
        )
    out["mediator_actions_30d"] = ActiveCounter(med, avail, query).window(everything, window_end(at, avail, 30))
    counts = {
        name: np.asarray(out[name], dtype=np.float64)
        for name in (
            "mediator_settled_cases_total",
            "mediator_cases_total",
            "mediator_settled_cases_30d",
            "mediator_cases_30d",
        )
    }
    out["mediator_settle_rate"] = ratio(counts["mediator_settled_cases_total"], counts["mediator_cases_total"])
    out["mediator_settle_rate_30d"] = ratio(counts["mediator_settled_cases_30d"], counts["mediator_cases_30d"])
    return to_arrow(out, SCHEMAS["mediator_performance"]())
