"""The champions as the review page shows them: version, kind, out-of-time figures and plots.

Everything is read from MLflow (``training.registry``): the version holding the ``champion``
alias, its run's metrics (``model.<group>.<figure>`` as ``training.tracking`` logs them) and its
plot artifacts (``plots/shap_summary.png``, ``plots/calibration.png``, ``plots/lift.png``).
Plots are read once per run and kept in memory: a run's artifacts never change.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concord.settings import Settings

MODELS = ("reachability", "settlement")
PLOTS = ("shap_summary.png", "calibration.png", "lift.png")
FIGURES = ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift", "base_rate", "rows")


@dataclass(frozen=True)
class ChampionCard:
    """One model's champion: what it is and how it did out of time, by creditor group."""

    model: str
    version: str | None
    run_id: str | None
    estimator: str = ""
    trained_to: str = ""
    auc_mean: float | None = None
    auc_std: float | None = None
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> figure -> value
    plots: tuple[str, ...] = ()


class ChampionFigures:
    """Reads the champions' cards and plots from MLflow; plots are cached by run and name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._plots: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def _client(self) -> Any:
        from training import registry

        return registry.configure(self.settings)

    def cards(self) -> list[ChampionCard]:
        """Both models' champion cards (``version`` None where a model has no champion yet)."""
        from training import registry

        client = self._client()
        out = []
        for model in MODELS:
            version = registry.version_by_alias(client, model, registry.CHAMPION)
            if version is None:
                out.append(ChampionCard(model, None, None))
                continue
            run = client.get_run(version.run_id)
            metrics = run.data.metrics
            groups: dict[str, dict[str, float]] = {}
            for key, value in metrics.items():
                parts = key.split(".")
                if len(parts) == 3 and parts[0] == "model" and parts[2] in FIGURES:
                    groups.setdefault(parts[1], {})[parts[2]] = float(value)
            names = {Path(a.path).name for a in client.list_artifacts(version.run_id, "plots")}
            out.append(
                ChampionCard(
                    model=model,
                    version=str(version.version),
                    run_id=version.run_id,
                    estimator=run.data.tags.get("estimator", ""),
                    trained_to=run.data.tags.get("train_to", "")[:10],
                    auc_mean=metrics.get("model.auc_mean"),
                    auc_std=metrics.get("model.auc_std"),
                    groups=dict(sorted(groups.items(), key=lambda item: (item[0] != "all", item[0]))),
                    plots=tuple(name for name in PLOTS if name in names),
                )
            )
        return out

    def plot(self, model: str, name: str) -> bytes | None:
        """The PNG ``name`` of the model's current champion run, or None when there is none."""
        import mlflow

        from training import registry

        if model not in MODELS or name not in PLOTS:
            return None
        client = self._client()
        version = registry.version_by_alias(client, model, registry.CHAMPION)
        if version is None:
            return None
        key = (version.run_id, name)
        with self._lock:
            if key in self._plots:
                return self._plots[key]
        if name not in {Path(a.path).name for a in client.list_artifacts(version.run_id, "plots")}:
            return None
        with tempfile.TemporaryDirectory() as scratch:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=f"plots/{name}", dst_path=scratch, tracking_uri=client.tracking_uri
            )
            data = Path(path).read_bytes()
        with self._lock:
            self._plots[key] = data
        return data
