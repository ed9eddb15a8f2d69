"""Training: point-in-time training sets, fit, out-of-time evaluation, MLflow logging.

``train`` is what ``concord train`` runs: labels from the ledger's events
(:mod:`training.labels`), features from ``get_historical_features`` of the model's
FeatureService, an out-of-time split, the calibrated LightGBM model and the logistic
baseline, figures overall and by creditor type, artifacts a person reads, and the model
registered in MLflow under the ``challenger`` alias.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from concord.settings import Settings
from models.baseline import logistic_baseline
from models.metrics import scores_by
from models.odds import CalibratedOdds
from models.specs import SPECS, ModelSpec
from training import labels as label_defs
from training import registry

Step = Callable[[str], None]
ENTITY_COLUMNS = ("case_pk", "debtor_key", "event_timestamp", "decision_ts")
META_COLUMNS = (*ENTITY_COLUMNS, "creditor", "case_id", "creditor_type", "label")


@dataclass
class TrainingResult:
    """A fitted model, its baseline and how both did on the out-of-time holdout."""

    spec: ModelSpec
    model: CalibratedOdds
    baseline: Any
    features: list[str]
    metrics: pd.DataFrame  # rows: (estimator, group); columns: figures
    holdout: pd.DataFrame  # features, label, creditor_type, p_model, p_baseline
    train_rows: int
    train_range: tuple[pd.Timestamp, pd.Timestamp]
    holdout_range: tuple[pd.Timestamp, pd.Timestamp]
    cut: pd.Timestamp


def feature_columns(frame: pd.DataFrame, spec: ModelSpec) -> list[str]:
    """Model inputs: the service's numeric and boolean features, minus meta and excluded ones
    and the stored epoch timestamps (``*_ts``): every time after training lies beyond the times
    training saw, so models take their ages (``days_since_*``, ``days_past_due``) instead."""
    columns = []
    for column in frame.columns:
        if column in META_COLUMNS or column in spec.exclude or column.endswith("_ts"):
            continue
        if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            columns.append(column)
    return columns


def out_of_time_split(frame: pd.DataFrame, horizon: pd.Timedelta, holdout_fraction: float = 0.2
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Train on decisions whose label window closed before the cut; hold out those after it."""
    times = frame["event_timestamp"]
    cut = times.quantile(1 - holdout_fraction)
    train = frame[times + horizon <= cut]
    holdout = frame[times >= cut]
    return train.sort_values("event_timestamp", kind="stable"), holdout, cut


def fit_and_evaluate(spec: ModelSpec, frame: pd.DataFrame, params: dict[str, Any] | None = None,
                     holdout_fraction: float = 0.2) -> TrainingResult:
    """Fit the model and the baseline on the past, score both on the out-of-time holdout."""
    horizon = label_defs.LABELS[spec.label].horizon
    train, holdout, cut = out_of_time_split(frame, horizon, holdout_fraction)
    if train["label"].nunique() < 2 or holdout["label"].nunique() < 2:
        raise ValueError(f"not enough history to train {spec.name}: both outcomes must occur before and after "
                         f"{cut:%Y-%m-%d} (training rows {len(train)}, holdout rows {len(holdout)})")
    features = feature_columns(frame, spec)
    monotone = {name: direction for name, direction in spec.monotone.items() if name in features}
    settings = {**spec.params, **(params or {})}
    model = CalibratedOdds(monotone=monotone, **settings).fit(train[features].astype(float), train["label"])
    baseline = logistic_baseline().fit(train[features].astype(float), train["label"])
    scored = holdout.copy()
    scored["p_model"] = model.predict_proba(holdout[features].astype(float))[:, 1]
    scored["p_baseline"] = baseline.predict_proba(holdout[features].astype(float))[:, 1]
    metrics = pd.concat([
        scores_by(scored["label"], scored["p_model"], scored["creditor_type"]).assign(estimator="model"),
        scores_by(scored["label"], scored["p_baseline"], scored["creditor_type"]).assign(estimator="baseline"),
    ], ignore_index=True)
    times = train["event_timestamp"]
    return TrainingResult(spec, model, baseline, features, metrics, scored, len(train),
                          (times.min(), times.max()),
                          (holdout["event_timestamp"].min(), holdout["event_timestamp"].max()), cut)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _plots(result: TrainingResult, folder: Path) -> list[Path]:
    """SHAP summary and dependence plots, calibration curve, lift chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap
    from sklearn.calibration import calibration_curve

    paths = []
    sample = result.holdout[result.features].astype(float).head(2000)
    contributions = result.model.contributions(sample)
    values = contributions[result.features].to_numpy()
    shap.summary_plot(values, sample, show=False, max_display=20, rng=np.random.default_rng(0))  # jitter, reproducible
    paths.append(folder / "shap_summary.png")
    plt.savefig(paths[-1], bbox_inches="tight", dpi=110)
    plt.close("all")
    top = np.argsort(-np.abs(values).mean(axis=0))[:3]
    for index in top:
        name = result.features[index]
        shap.dependence_plot(index, values, sample, show=False, interaction_index=None)
        paths.append(folder / f"shap_dependence_{name}.png")
        plt.savefig(paths[-1], bbox_inches="tight", dpi=110)
        plt.close("all")
    fig, ax = plt.subplots(figsize=(5, 5))
    for column, label in (("p_model", "model"), ("p_baseline", "baseline")):
        observed, predicted = calibration_curve(result.holdout["label"], result.holdout[column], n_bins=10,
                                                strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"{result.spec.name}: calibration")
    ax.legend()
    paths.append(folder / "calibration.png")
    fig.savefig(paths[-1], bbox_inches="tight", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, label in (("p_model", "model"), ("p_baseline", "baseline")):
        ordered = result.holdout.sort_values(column, ascending=False)["label"].to_numpy()
        gains = np.cumsum(ordered) / max(ordered.sum(), 1)
        ax.plot(np.arange(1, len(gains) + 1) / len(gains), gains, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="share of cases worked, best first", ylabel="share of positives found",
           title=f"{result.spec.name}: cumulative gains (lift)")
    ax.legend()
    paths.append(folder / "lift.png")
    fig.savefig(paths[-1], bbox_inches="tight", dpi=110)
    plt.close(fig)
    return paths


def report_markdown(result: TrainingResult, extra: dict[str, Any]) -> str:
    """The evaluation report a person reads."""
    table = result.metrics.pivot_table(index=["estimator", "group"], values=[
        "rows", "base_rate", "roc_auc", "pr_auc", "brier", "ece", "top_decile_lift"]).round(4)
    lines = [
        f"# {result.spec.name}: evaluation on the out-of-time holdout",
        "",
        f"- label: {result.spec.label} ({label_defs.LABELS[result.spec.label].horizon.days} days after the decision)",
        f"- feature service: `{result.spec.feature_service}`; {len(result.features)} features",
        f"- training rows: {result.train_rows:,}, decisions {result.train_range[0]:%Y-%m-%d} to "
        f"{result.train_range[1]:%Y-%m-%d}",
        f"- holdout rows: {len(result.holdout):,}, decisions {result.holdout_range[0]:%Y-%m-%d} to "
        f"{result.holdout_range[1]:%Y-%m-%d} (cut {result.cut:%Y-%m-%d})",
        *[f"- {k}: {v}" for k, v in extra.items()],
        "",
        "## Figures (model = calibrated LightGBM, baseline = logistic regression)",
        "",
        table.to_markdown() if hasattr(table, "to_markdown") else table.to_string(),
        "",
        "Plots: `shap_summary.png`, `shap_dependence_*.png`, `calibration.png`, `lift.png`.",
    ]
    return "\n".join(lines)


def log_and_register(settings: Settings, engine: Engine, result: TrainingResult, extra: dict[str, Any] | None = None,
                     step: Step | None = None) -> str:
    """Log the run to MLflow, register the model and give it the ``challenger`` alias; returns the version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    extra = dict(extra or {})
    client = registry.configure(settings)
    with mlflow.start_run(run_name=f"{result.spec.name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags({
            "model": result.spec.name, "label": result.spec.label, "feature_service": result.spec.feature_service,
            "git_commit": _git_commit(),
            "train_rows": str(result.train_rows), "holdout_rows": str(len(result.holdout)),
            "train_from": str(result.train_range[0]), "train_to": str(result.train_range[1]),
            "holdout_from": str(result.holdout_range[0]), "holdout_to": str(result.holdout_range[1]),
        })
        mlflow.log_params({k: v for k, v in result.model.get_params().items() if k != "monotone"})
        mlflow.log_param("monotone", json.dumps(result.model.monotone or {}))
        for row in result.metrics.itertuples(index=False):
            for figure in ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift", "base_rate", "rows"):
                value = getattr(row, figure)
                if value == value:  # not NaN
                    mlflow.log_metric(f"{row.estimator}.{row.group}.{figure}", float(value))
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            if step:
                step("plots")
            for path in _plots(result, folder):
                mlflow.log_artifact(str(path), artifact_path="plots")
            (folder / "report.md").write_text(report_markdown(result, extra), encoding="utf-8")
            mlflow.log_artifact(str(folder / "report.md"))
            (folder / "training_set.json").write_text(json.dumps({
                "feature_service": result.spec.feature_service, "features": result.features,
                "train_rows": result.train_rows, "train_range": [str(t) for t in result.train_range],
                "holdout_rows": len(result.holdout), "holdout_range": [str(t) for t in result.holdout_range],
                **{k: str(v) for k, v in extra.items()},
            }, indent=2))
            mlflow.log_artifact(str(folder / "training_set.json"))
            holdout = result.holdout[[*result.features, "label", "creditor_type", "event_timestamp"]]
            holdout.to_parquet(folder / "holdout.parquet")
            mlflow.log_artifact(str(folder / "holdout.parquet"), artifact_path="holdout")
        if step:
            step("registering")
        sample = result.holdout[result.features].astype(float).head(5)
        import skops.io

        # skops refuses unknown types on load; these are the ones this very model is made of.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(result.model))
        info = mlflow.sklearn.log_model(
            result.model, name="model", signature=infer_signature(sample, result.model.predict_proba(sample)[:, 1]),
            input_example=sample, pyfunc_predict_fn="predict_proba", skops_trusted_types=trusted,
            registered_model_name=registry.registered_name(result.spec.name),
        )
        version = str(info.registered_model_version)
        registry.set_alias(client, engine, result.spec.name, registry.CHALLENGER, version,
                           f"trained in run {run.info.run_id}")
    return version


def training_frame(settings: Settings, engine: Engine, spec: ModelSpec, as_of: dt.datetime,
                   per_case: float = 3.0, seed: int = 0) -> pd.DataFrame:
    """Decision points with labels and the model's features, point-in-time correct."""
    from features.store.retrieval import historical_features

    label = label_defs.LABELS[spec.label]
    cases, events = label_defs.load_history(engine)
    points = label_defs.decision_times(cases, events, label, as_of, per_case=per_case, seed=seed)
    points["label"] = label_defs.attach_labels(points, events, label)
    # Feast merges entity rows sharing keys and timestamp; one decision per case and instant.
    points = points.drop_duplicates(["case_pk", "event_timestamp"]).reset_index(drop=True)
    features = historical_features(settings, points[list(ENTITY_COLUMNS)], spec.feature_service)
    keys = ["case_pk", "event_timestamp"]
    # The ledger's columns win over same-named features (creditor_type is both).
    duplicates = [c for c in features.columns if c in points.columns and c not in keys]
    return points.merge(features.drop(columns=duplicates), on=keys, how="left")


def train(settings: Settings, engine: Engine, model: str, as_of: dt.datetime | None = None,
          params: dict[str, Any] | None = None, step: Step | None = None) -> tuple[TrainingResult, str]:
    """Train one model end to end and register it as challenger; returns (result, version)."""
    spec = SPECS[model]
    as_of = as_of or dt.datetime.now(dt.UTC)
    if step:
        step(f"{model}: building the point-in-time training set")
    frame = training_frame(settings, engine, spec, as_of)
    if step:
        step(f"{model}: fitting on {len(frame):,} decisions")
    result = fit_and_evaluate(spec, frame, params)
    if step:
        step(f"{model}: logging to MLflow")
    version = log_and_register(settings, engine, result, {"as_of": as_of.isoformat()}, step)
    return result, version
