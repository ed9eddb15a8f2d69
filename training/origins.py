"""Rolling origins: the cut-off dates of the out-of-time evaluation and the rows on each side.

The last ``validation_share`` of the decisions (in time) are cut into ``folds`` consecutive
blocks. For each block, the training rows are the decisions whose label window had closed by the
block's first decision (``cut``): nothing learnt from them comes from after the cut, so the block
is truly in their future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_CLASS_ROWS = 5  # a fold needs at least this many of each outcome on both sides to say anything


@dataclass(frozen=True)
class Fold:
    """One origin: fit on rows ``train`` (label windows closed by ``cut``), validate on ``valid``."""

    cut: pd.Timestamp
    train: np.ndarray
    valid: np.ndarray


def rolling_origins(
    times: pd.Series, labels: np.ndarray, horizon: pd.Timedelta, folds: int = 3, validation_share: float = 0.3
) -> list[Fold]:
    """The folds of decisions ordered by ``times`` (oldest first); a fold without enough of
    each outcome in its training or validation rows is left out."""
    count = len(times)
    stamps = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    edges = np.linspace(int(count * (1 - validation_share)), count, folds + 1).astype(int)
    out = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        if stop <= start:
            continue
        cut = stamps[start]
        closed = int(stamps.searchsorted(cut - horizon, side="right"))
        train, valid = np.arange(closed), np.arange(start, stop)
        enough = all(
            min(int(labels[rows].sum()), len(rows) - int(labels[rows].sum())) >= MIN_CLASS_ROWS
            for rows in (train, valid)
        )
        if enough:
            out.append(Fold(cut, train, valid))
    return out
