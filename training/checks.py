"""No silent failure: the training sets that cannot give a useful model, and why, in one sentence.

``concord train`` refuses (exit 1, nothing registered) when most decisions have no feature
values, when one outcome is too rare to learn, when there is no history to validate out of time,
or when the best model is no better than a constant on that validation. Each refusal is a
:class:`TrainingRefused` whose message says why and what to do.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from ingestion.lateness import history_received_late
from models.specs import ModelSpec
from training import labels as label_defs
from training.dataset import TrainingSet

MIN_OUTCOME_ROWS = 30  # decisions of each outcome a model needs to learn anything
EMPTY_BELOW = 0.05  # a decision with fewer of its features known than this share has "no feature values"
MOSTLY = 0.5
CHECK_ROWS = 200_000


class TrainingRefused(Exception):
    """The training set cannot give a useful model; the message is the sentence for the user."""


def known_share(data: TrainingSet) -> np.ndarray:
    """Share of each decision's features that have a value."""
    out = np.empty(len(data), dtype=np.float32)
    for start in range(0, len(data), CHECK_ROWS):
        out[start : start + CHECK_ROWS] = (~np.isnan(data.values[start : start + CHECK_ROWS])).mean(axis=1)
    return out


def require_features(data: TrainingSet, spec: ModelSpec, engine: Engine) -> None:
    """Refuse when most decisions have no feature values, naming the likely cause."""
    empty = float((known_share(data) < EMPTY_BELOW).mean()) if len(data) else 1.0
    if empty <= MOSTLY:
        return
    what = f"{empty:.0%} of the {len(data):,} {spec.name} decisions have no feature values"
    late = history_received_late(engine)
    if late is not None and late.last_received is not None:
        raise TrainingRefused(
            f"{what}: the rows were received {late.last_received:%Y-%m-%d}, so the history is unknown at every "
            f"decision before then; re-import history with `--historical` (nothing is lost or duplicated), run "
            f"`concord features build`, then train again"
        )
    raise TrainingRefused(
        f"{what}; run `concord features build` (and `concord features apply`) after importing, then train again"
    )


def require_outcomes(data: TrainingSet, spec: ModelSpec, as_of: dt.datetime) -> None:
    """Refuse when one outcome is too rare among the decisions to learn from."""
    label = label_defs.LABELS[spec.label]
    positive = int(data.labels.sum())
    for count, what in (
        (positive, f"followed by {spec.label} within {label.horizon.days} days"),
        (len(data) - positive, f"not followed by {spec.label} within {label.horizon.days} days"),
    ):
        if count < MIN_OUTCOME_ROWS:
            raise TrainingRefused(
                f"only {count:,} of the {len(data):,} {spec.name} decisions up to {as_of:%Y-%m-%d} were {what}; "
                f"a model needs at least {MIN_OUTCOME_ROWS} of each outcome: import more history or train later"
            )


def no_history_to_validate(spec: ModelSpec, rows: int, as_of: dt.datetime) -> TrainingRefused:
    """The refusal when no rolling origin has both outcomes on both sides."""
    horizon = label_defs.LABELS[spec.label].horizon.days
    return TrainingRefused(
        f"the {rows:,} {spec.name} decisions up to {as_of:%Y-%m-%d} leave no out-of-time validation with both "
        f"outcomes (a decision is validated only by models fitted on decisions {horizon} days older, whose "
        f"outcome was known); import more history or train later"
    )


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of a ROC-AUC on ``positives`` and ``negatives`` rows."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / max(
        positives * negatives, 1
    )
    return float(np.sqrt(max(variance, 0.0)))


def require_skill(spec: ModelSpec, folds: pd.DataFrame, chosen: str) -> None:
    """Refuse when the chosen model's mean validation ROC-AUC is not above 0.5 by at least
    twice its standard error (a constant does 0.5)."""
    auc = float(folds[f"auc_{chosen}"].mean())
    positives = int((folds["base_rate"] * folds["valid_rows"]).round().sum())
    negatives = int(folds["valid_rows"].sum()) - positives
    margin = 2 * auc_standard_error(0.5, positives, negatives)
    if auc <= 0.5 + margin:
        raise TrainingRefused(
            f"on the out-of-time validation ({int(folds['valid_rows'].sum()):,} {spec.name} decisions) the best "
            f"model's ROC-AUC is {auc:.3f}, no better than a constant (0.5 + {margin:.3f}); check that the features "
            f"carry history (`--historical` imports, `concord features build`) and that the outcomes are imported"
        )
