"""What one training run produced: the registered model, the baseline, both fits' figures.

Kept apart from the pipeline so that logging (:mod:`training.tracking`) and the pipeline share it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from models.baseline import LogisticOdds
from models.odds import CalibratedOdds
from models.specs import ModelSpec
from training.tuning import Tuned


@dataclass
class TrainingResult:
    """A trained model and the evidence for it.

    ``model`` is what gets registered: the refitted gradient-boosted model, or the refitted
    baseline when the baseline did better on the time-ordered validation (``chosen`` says
    which). ``metrics`` pools every validation row of the rolling origins (rows: estimator
    ``lightgbm``, ``baseline`` or ``model`` = the chosen one, and group); ``folds`` has one row
    per origin; ``holdout`` is the last origin's validation rows with the out-of-time
    predictions ``p_model`` and ``p_baseline``, and ``evaluation_model`` the chosen kind of
    model as fitted for that origin (what ``concord models promote`` compares).
    """

    spec: ModelSpec
    model: CalibratedOdds | LogisticOdds
    baseline: LogisticOdds
    lightgbm: CalibratedOdds
    chosen: str
    features: list[str]
    metrics: pd.DataFrame
    folds: pd.DataFrame
    holdout: pd.DataFrame
    evaluation_model: CalibratedOdds | LogisticOdds
    tuned: Tuned
    refit_rows: int
    refit_range: tuple[pd.Timestamp, pd.Timestamp]
    refit_trees: int
    validation_trees: int = 0  # the gradient-boosted model's tree count on the rolling origins
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def train_rows(self) -> int:
        """Decisions the registered model was fitted on."""
        return self.refit_rows

    @property
    def train_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Oldest and newest decision the registered model was fitted on."""
        return self.refit_range

    @property
    def cut(self) -> pd.Timestamp:
        """The first rolling origin's cut: every later decision was validated out of time."""
        return pd.Timestamp(self.folds["cut"].iloc[0])

    @property
    def holdout_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Oldest and newest validated decision."""
        return pd.Timestamp(self.folds["valid_from"].iloc[0]), pd.Timestamp(self.folds["valid_to"].iloc[-1])

    def auc(self, estimator: str) -> tuple[float, float]:
        """Mean and standard deviation over the origins of an estimator's ROC-AUC
        (``lightgbm``, ``baseline`` or ``model``)."""
        column = self.folds[f"auc_{self.chosen if estimator == 'model' else estimator}"]
        return float(column.mean()), float(column.std(ddof=0))
