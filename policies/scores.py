"""The champions' scores and the top reasons behind them, for the policy engine.

:class:`ChampionScorer` holds the reachability and settlement champions (loaded once from the
MLflow registry through ``training.scoring.champion``, or handed over directly, as tests and the
service do) and gives, for feature rows, ``p_reach`` and ``p_settle`` and, per case, the features
that moved each score most: LightGBM's ``pred_contrib`` (SHAP values, in log-odds). Features are
named with their values; they hold no personal data (``features/FEATURES.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SCORE_COLUMNS = {"reachability": "p_reach", "settlement": "p_settle"}


@dataclass(frozen=True)
class Reason:
    """One feature's push on one model's score for one case."""

    model: str
    feature: str
    value: float | None
    log_odds: float  # contribution to the model's raw score; > 0 raises the probability


class ChampionScorer:
    """Scores and reasons from fitted models (``CalibratedOdds``) by model name."""

    def __init__(self, models: Mapping[str, Any], versions: Mapping[str, str] | None = None) -> None:
        missing = [name for name in SCORE_COLUMNS if name not in models]
        if missing:
            raise ValueError(f"the scorer needs the models {', '.join(missing)}")
        self.models = dict(models)
        self.versions = {name: str((versions or {}).get(name, "unregistered")) for name in SCORE_COLUMNS}

    @classmethod
    def champions(cls, settings: Any) -> ChampionScorer:
        """The registered champions (raises LookupError when a model has none yet)."""
        from training.scoring import champion

        loaded = {name: champion(settings, name) for name in SCORE_COLUMNS}
        return cls(
            {name: model for name, (model, _) in loaded.items()},
            {name: version for name, (_, version) in loaded.items()},
        )

    def _inputs(self, name: str, features: pd.DataFrame) -> pd.DataFrame:
        columns = list(self.models[name].feature_names_in_)
        absent = [c for c in columns if c not in features.columns]
        if absent:
            raise ValueError(f"the features lack {', '.join(absent[:5])}, which the {name} model needs")
        return features[columns].astype(np.float64)

    def score(self, features: pd.DataFrame) -> pd.DataFrame:
        """``p_reach``, ``p_settle`` and the model versions for each row of ``features``."""
        out = pd.DataFrame(index=features.index)
        for name, column in SCORE_COLUMNS.items():
            out[column] = (
                self.models[name].predict_proba(self._inputs(name, features))[:, 1] if len(features) else np.array([])
            )
            out[f"{name}_version"] = self.versions[name]
        return out

    def reasons(self, features: pd.DataFrame, top: int = 3) -> list[tuple[Reason, ...]]:
        """Per row, the ``top`` features of each model by absolute contribution, largest first."""
        per_model = []
        for name in SCORE_COLUMNS:
            inputs = self._inputs(name, features)
            contributions = self.models[name].contributions(inputs).drop(columns="bias").to_numpy()
            order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :top]
            per_model.append((name, inputs, contributions, order))
        out = []
        for i in range(len(features)):
            reasons = []
            for name, inputs, contributions, order in per_model:
                for j in order[i]:
                    value = inputs.iat[i, j]
                    reasons.append(
                        Reason(
                            name,
                            str(inputs.columns[j]),
                            None if np.isnan(value) else float(value),
                            round(float(contributions[i, j]), 4),
                        )
                    )
            out.append(tuple(reasons))
        return out
