"""Training end to end: evaluate out of time, choose, refit on everything, check, register.

``train`` is what ``concord train`` runs for one model:

1. the point-in-time training set up to the as-of (:mod:`training.dataset`), refused when most
   decisions have no feature values or one outcome is too rare (:mod:`training.checks`);
2. settings for the gradient-boosted model searched on time-ordered validation
   (:mod:`training.tuning`);
3. the out-of-time evaluation over several cut-off dates, gradient-boosted model and logistic
   baseline side by side (:mod:`training.evaluation`); whichever has the higher mean ROC-AUC
   is the kind registered, so a champion is never worse than the baseline there;
4. the refit of both on every labelled decision up to the as-of, tree count and calibration
   by cross-fitting (:mod:`training.refit`); refused when the chosen kind is no better than a
   constant out of time;
5. MLflow logging of both fits and registration as ``challenger`` (:mod:`training.tracking`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from concord.settings import Settings
from models.specs import SPECS, ModelSpec
from training import checks
from training import labels as label_defs
from training.dataset import ENTITY_COLUMNS, META_COLUMNS, TrainingSet, feature_columns, training_frame, training_set
from training.evaluation import evaluate
from training.origins import rolling_origins
from training.refit import refit
from training.result import TrainingResult
from training.skew import feature_profile
from training.tracking import log_and_register
from training.tuning import MAX_TREES, Budget, dataset_of, search

Step = Callable[[str], None]
__all__ = [
    "ENTITY_COLUMNS",
    "META_COLUMNS",
    "TrainingResult",
    "feature_columns",
    "fit_and_evaluate",
    "log_and_register",
    "prepare",
    "train",
    "training_frame",
]


def fit_and_evaluate(
    spec: ModelSpec,
    frame: pd.DataFrame | TrainingSet,
    params: dict[str, Any] | None = None,
    budget: Budget | None = None,
    as_of: dt.datetime | None = None,
    step: Step | None = None,
) -> TrainingResult:
    """Search settings, evaluate out of time against the baseline, choose, refit on every decision.

    ``params`` fixes the gradient-boosted settings instead of searching them (``n_estimators``
    then caps the tree count). Raises :class:`~training.checks.TrainingRefused` when no rolling
    origin has both outcomes on both sides."""
    data = frame if isinstance(frame, TrainingSet) else TrainingSet.from_frame(frame, spec)
    horizon = label_defs.LABELS[spec.label].horizon
    folds = rolling_origins(data.times, data.labels, horizon)
    if not folds:
        raise checks.no_history_to_validate(spec, len(data), as_of or data.times.iloc[-1].to_pydatetime())
    if step:
        step(f"{spec.name}: choosing settings on {len(folds)} out-of-time folds")
    tuned = search(spec, data, horizon, budget or Budget(), fixed=params)
    dataset = dataset_of(data)
    if step:
        step(f"{spec.name}: evaluating model and baseline out of time")
    evaluation = evaluate(spec, data, folds, tuned.params, dataset, int((params or {}).get("n_estimators", MAX_TREES)))
    table = evaluation.table(data)
    chosen = "lightgbm" if table["auc_lightgbm"].mean() >= table["auc_baseline"].mean() else "baseline"
    if step:
        step(f"{spec.name}: refitting on all {len(data):,} decisions")
    refitted = refit(spec, data, tuned.params, dataset, (params or {}).get("n_estimators"))
    del dataset
    pooled = evaluation.pooled(data)
    metrics = pd.concat([pooled, pooled[pooled["estimator"] == chosen].assign(estimator="model")], ignore_index=True)
    last = folds[-1].valid
    holdout = data.frame(last)
    holdout["p_lightgbm"] = evaluation.lightgbm[-1]
    holdout["p_baseline"] = evaluation.baseline[-1]
    holdout["p_model"] = holdout[f"p_{chosen}"]
    times = data.times
    return TrainingResult(
        spec=spec,
        model=refitted.lightgbm if chosen == "lightgbm" else refitted.baseline,
        baseline=refitted.baseline,
        lightgbm=refitted.lightgbm,
        chosen=chosen,
        features=data.features,
        metrics=metrics,
        folds=table,
        holdout=holdout,
        evaluation_model=evaluation.last_lightgbm if chosen == "lightgbm" else evaluation.last_baseline,
        tuned=tuned,
        refit_rows=refitted.rows,
        refit_range=(times.iloc[0], times.iloc[-1]),
        refit_trees=refitted.trees,
        validation_trees=evaluation.trees,
        profile=feature_profile(data.values, data.features),
    )


def prepare(
    settings: Settings,
    engine: Engine,
    model: str,
    as_of: dt.datetime,
    params: dict[str, Any] | None = None,
    step: Step | None = None,
    budget: Budget | None = None,
) -> TrainingResult:
    """Train one model up to ``as_of`` without registering it.

    Raises :class:`~training.checks.TrainingRefused` when the training set cannot give a
    useful model (the message says why and what to do)."""
    spec = SPECS[model]
    if step:
        step(f"{model}: building the point-in-time training set")
    data = training_set(settings, engine, spec, as_of)
    checks.require_features(data, spec, engine)
    checks.require_outcomes(data, spec, as_of)
    result = fit_and_evaluate(spec, data, params, budget or Budget.from_settings(settings), as_of, step)
    del data  # one model's data is released before the next is built
    checks.require_skill(spec, result.folds, result.chosen)
    return result


def train(
    settings: Settings,
    engine: Engine,
    model: str,
    as_of: dt.datetime | None = None,
    params: dict[str, Any] | None = None,
    step: Step | None = None,
    budget: Budget | None = None,
) -> tuple[TrainingResult, str]:
    """Train one model end to end and register it as challenger; returns (result, version)."""
    as_of = as_of or dt.datetime.now(dt.UTC)
    result = prepare(settings, engine, model, as_of, params, step, budget)
    if step:
        step(f"{model}: logging to MLflow")
    return result, log_and_register(settings, engine, result, {"as_of": as_of.isoformat()}, step)
