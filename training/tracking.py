"""Logging a training run to MLflow and registering its model as ``challenger``.

MLflow records both fits: the rolling-origin evaluation (each origin's cut, rows and time
ranges, ROC-AUC of model and baseline; the pooled figures; the search's trials) and the refit
that is registered (its rows, time range and tree count). Artifacts: ``report.md``, the plots,
``training_set.json``, ``folds.csv``, ``search.csv``, ``feature_profile.json`` (what
``concord score`` compares with), the last origin's holdout and the model fitted for it
(``evaluation_model``: what ``concord models promote`` compares on that holdout).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from concord.settings import Settings
from training import labels as label_defs
from training import registry
from training.plots import plots
from training.result import TrainingResult

Step = Callable[[str], None]
FIGURES = ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift", "base_rate", "rows")


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fits(result: TrainingResult) -> dict[str, Any]:
    """Rows and time ranges of both fits: each evaluation origin's and the refit's."""
    return {
        "registered": {
            "estimator": result.chosen,
            "rows": result.refit_rows,
            "trees": result.refit_trees,
            "from": str(result.refit_range[0]),
            "to": str(result.refit_range[1]),
        },
        "evaluation": [
            {k: (str(v) if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
            for row in result.folds.to_dict(orient="records")
        ],
    }


def report_markdown(result: TrainingResult, extra: dict[str, Any]) -> str:
    """The evaluation report a person reads."""
    table = result.metrics.pivot_table(index=["estimator", "group"], values=list(FIGURES[:-1]) + ["rows"]).round(4)
    model_auc, spread = result.auc("model")
    tuned = result.tuned
    lines = [
        f"# {result.spec.name}: out-of-time evaluation, then refit",
        "",
        f"- label: {result.spec.label} ({label_defs.LABELS[result.spec.label].horizon.days} days after the decision)",
        f"- feature service: `{result.spec.feature_service}`; {len(result.features)} features",
        f"- registered: the {'gradient-boosted model' if result.chosen == 'lightgbm' else 'logistic baseline'}, "
        f"refitted on {result.refit_rows:,} decisions {result.refit_range[0]:%Y-%m-%d} to "
        f"{result.refit_range[1]:%Y-%m-%d}" + (f" ({result.refit_trees} trees)" if result.chosen == "lightgbm" else ""),
        f"- out of time over {len(result.folds)} origins: ROC-AUC {model_auc:.4f} +/- {spread:.4f} "
        f"(gradient-boosted {result.auc('lightgbm')[0]:.4f}, baseline {result.auc('baseline')[0]:.4f})",
        f"- settings: {tuned.trials} trial(s) in {tuned.seconds:.0f} s; chosen {json.dumps(tuned.params)}, "
        f"{result.validation_trees} trees on the rolling origins",
        *[f"- {k}: {v}" for k, v in extra.items()],
        "",
        "## Rolling origins",
        "",
        result.folds.round(4).to_markdown(index=False),
        "",
        "## Figures on every validated decision (model = the registered kind, fitted before each origin)",
        "",
        table.to_markdown(),
        "",
        "Plots: `shap_summary.png`, `shap_dependence_*.png`, `calibration.png`, `lift.png`.",
    ]
    return "\n".join(lines)


def _log_figures(result: TrainingResult) -> None:
    import mlflow

    for row in result.metrics.itertuples(index=False):
        for figure in FIGURES:
            value = getattr(row, figure)
            if value == value:  # not NaN
                mlflow.log_metric(f"{row.estimator}.{row.group}.{figure}", float(value))
    for number, row in enumerate(result.folds.itertuples(index=False)):
        mlflow.log_metric(f"fold{number}.auc_lightgbm", float(row.auc_lightgbm))
        mlflow.log_metric(f"fold{number}.auc_baseline", float(row.auc_baseline))
    for estimator in ("model", "lightgbm", "baseline"):
        mean, spread = result.auc(estimator)
        mlflow.log_metrics({f"{estimator}.auc_mean": mean, f"{estimator}.auc_std": spread})


@functools.cache
def _distributions() -> dict[str, tuple[str, ...]]:
    return {module: tuple(names) for module, names in importlib.metadata.packages_distributions().items()}


def pip_requirements(trusted: list[str]) -> list[str]:
    """The pinned packages a model needs, read off the types it is made of (skops' list) and the
    libraries that save and load it. MLflow's own inference loads every model again in a child
    process (about 50 s a save on a loaded machine). Concord's own package is left out: it is
    what loads the model, and it is not on an index."""
    modules = {"mlflow", "sklearn", "skops", "numpy", "pandas", "scipy"} | {name.split(".")[0] for name in trusted}
    own = set(_distributions().get("concord", ()))
    names = {dist for module in modules for dist in _distributions().get(module, ()) if dist not in own}
    return sorted(f"{name}=={importlib.metadata.version(name)}" for name in names)


def sklearn_model_options(estimator: Any) -> dict[str, Any]:
    """``mlflow.sklearn.log_model`` options every Concord model is saved with: skops serialisation
    trusting exactly the types this model is made of (skops refuses unknown ones on load), and
    the packages it needs."""
    import skops.io

    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    return {"skops_trusted_types": trusted, "pip_requirements": pip_requirements(trusted)}


def _log_model(estimator: Any, name: str, registered: str | None = None) -> Any:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    sample = pd.DataFrame([[0.0] * len(estimator.feature_names_in_)], columns=list(estimator.feature_names_in_))
    return mlflow.sklearn.log_model(
        estimator,
        name=name,
        signature=infer_signature(sample, estimator.predict_proba(sample)[:, 1]),
        input_example=sample,
        pyfunc_predict_fn="predict_proba",
        registered_model_name=registered,
        **sklearn_model_options(estimator),
    )


def log_and_register(
    settings: Settings,
    engine: Engine,
    result: TrainingResult,
    extra: dict[str, Any] | None = None,
    step: Step | None = None,
) -> str:
    """Log the run to MLflow, register the model and give it the ``challenger`` alias; returns the version."""
    import mlflow

    extra = dict(extra or {})
    client = registry.configure(settings)
    holdout_from, holdout_to = result.holdout["event_timestamp"].min(), result.holdout["event_timestamp"].max()
    with mlflow.start_run(run_name=f"{result.spec.name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags(
            {
                "model": result.spec.name,
                "label": result.spec.label,
                "feature_service": result.spec.feature_service,
                "git_commit": _git_commit(),
                "estimator": result.chosen,
                "train_rows": str(result.refit_rows),
                "train_from": str(result.refit_range[0]),
                "train_to": str(result.refit_range[1]),
                "evaluation_origins": str(len(result.folds)),
                "holdout_rows": str(len(result.holdout)),
                "holdout_from": str(holdout_from),
                "holdout_to": str(holdout_to),
                **{k: str(v) for k, v in extra.items()},
            }
        )
        mlflow.log_params(
            {
                **{f"tuned.{k}": v for k, v in result.tuned.params.items()},
                "search_trees": result.tuned.trees,
                "validation_trees": result.validation_trees,
                "refit_trees": result.refit_trees,
                "search_trials": result.tuned.trials,
                "search_seconds": round(result.tuned.seconds, 1),
                "monotone": json.dumps(result.spec.monotone),
            }
        )
        _log_figures(result)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            if step:
                step(f"{result.spec.name}: plots")
            for path in plots(result, folder):
                mlflow.log_artifact(str(path), artifact_path="plots")
            documents = {
                "report.md": report_markdown(result, extra),
                "training_set.json": json.dumps(
                    {
                        "feature_service": result.spec.feature_service,
                        "features": result.features,
                        **fits(result),
                        **{k: str(v) for k, v in extra.items()},
                    },
                    indent=2,
                ),
                "feature_profile.json": json.dumps(result.profile),
                "folds.csv": result.folds.to_csv(index=False),
                "search.csv": pd.DataFrame(result.tuned.history).to_csv(index=False),
            }
            for name, text in documents.items():
                (folder / name).write_text(text, encoding="utf-8")
                mlflow.log_artifact(str(folder / name))
            holdout = result.holdout[[*result.features, "label", "creditor_type", "event_timestamp"]]
            holdout.to_parquet(folder / "holdout.parquet")
            mlflow.log_artifact(str(folder / "holdout.parquet"), artifact_path="holdout")
        if step:
            step(f"{result.spec.name}: registering")
        _log_model(result.evaluation_model, "evaluation_model")
        info = _log_model(result.model, "model", registry.registered_name(result.spec.name))
        version = str(info.registered_model_version)
        registry.set_alias(
            client, engine, result.spec.name, registry.CHALLENGER, version, f"trained in run {run.info.run_id}"
        )
    return version
