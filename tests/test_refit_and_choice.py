"""Evaluate, then refit; the kind registered is the one that did better out of time.

The registered model learns from every decision up to the as-of (not only the part before the
evaluation's cut), MLflow says which decisions each fit used, and a champion is never worse
than the logistic baseline on the same time-ordered validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from concord.db import make_engine
from models.specs import REACHABILITY, SETTLEMENT
from tests.test_registry import decisions
from training import registry
from training.pipeline import fit_and_evaluate, log_and_register


def test_the_registered_model_learnt_from_decisions_up_to_the_as_of(settings) -> None:
    # A channel opened for the most recent sixth of the history, and it works: only a model
    # fitted on the newest decisions can know.
    frame = decisions(n=5000, seed=3)
    rng = np.random.default_rng(4)
    newest = (frame["event_timestamp"] >= frame["event_timestamp"].quantile(5 / 6)).to_numpy()
    frame["new_channel"] = (newest & (rng.random(len(frame)) < 0.5)).astype(float)
    opened = frame["new_channel"] == 1
    frame.loc[opened, "label"] = (rng.random(int(opened.sum())) < 0.95).astype(int)
    result = fit_and_evaluate(SETTLEMENT, frame, {"n_estimators": 200})
    engine = make_engine(settings)
    version = log_and_register(settings, engine, result)
    engine.dispose()
    model = registry.load_version("settlement", version)
    rows = frame[result.features].iloc[:500].astype(float)
    opened, closed = rows.assign(new_channel=1.0), rows.assign(new_channel=0.0)
    lift = model.predict_proba(opened)[:, 1] - model.predict_proba(closed)[:, 1]
    assert lift.mean() > 0.2, lift.mean()

    client = registry.configure(settings)
    run = client.get_run(client.get_model_version(registry.registered_name("settlement"), version).run_id)
    assert int(run.data.tags["train_rows"]) == len(frame)
    assert pd.Timestamp(run.data.tags["train_to"]) == frame["event_timestamp"].max()
    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="training_set.json", tracking_uri=client.tracking_uri
    )
    fits = json.loads(Path(path).read_text(encoding="utf-8"))
    assert fits["registered"]["rows"] == len(frame)
    assert len(fits["evaluation"]) >= 2  # each origin's fit, with its rows and time range
    assert all(pd.Timestamp(f["train_to"]) < pd.Timestamp(f["cut"]) for f in fits["evaluation"])


def linear_world(n: int, seed: int) -> pd.DataFrame:
    """Decisions whose outcome is a sum of many weak linear traces: a linear model's world."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 25))
    logit = values @ rng.normal(0, 0.25, 25) - 0.3
    frame = pd.DataFrame(values, columns=[f"trace_{i}" for i in range(25)])
    frame["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, 400, n)), unit="D"
    )
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["case_pk"] = np.arange(n)
    frame["debtor_key"] = [f"{i:032x}" for i in range(n)]
    frame["creditor_type"] = "bank"
    return frame


@pytest.mark.parametrize("seed", [1, 2])
def test_a_champion_is_never_worse_than_the_baseline_on_the_same_validation(seed: int) -> None:
    result = fit_and_evaluate(REACHABILITY, linear_world(1500, seed), {"n_estimators": 300})
    overall = result.metrics[result.metrics["group"] == "all"].set_index("estimator")
    assert overall.loc["model", "roc_auc"] >= overall.loc["baseline", "roc_auc"]
    assert result.model.predict_proba(result.holdout[result.features])[:, 1].std() > 0


def test_rolling_origins_fit_only_on_decisions_whose_outcome_was_known_at_the_cut() -> None:
    from training.origins import rolling_origins

    frame = linear_world(3000, 5)
    horizon = pd.Timedelta(days=90)
    folds = rolling_origins(frame["event_timestamp"], frame["label"].to_numpy(), horizon)
    assert len(folds) == 3
    times = frame["event_timestamp"]
    for fold in folds:
        assert (times.iloc[fold.train] + horizon <= fold.cut).all()
        assert (times.iloc[fold.valid] >= fold.cut).all()
    assert [f.cut for f in folds] == sorted(f.cut for f in folds)


def test_the_folds_tree_count_is_the_best_of_the_mean_curve_with_short_curves_carried_on() -> None:
    from training.evaluation import mean_curve_best

    # the second fold stopped at 3 trees: its last value counts on, so the mean peaks at 4
    curves = [np.array([0.6, 0.7, 0.8, 0.9, 0.85]), np.array([0.6, 0.7, 0.65])]
    assert mean_curve_best(curves) == 4
    assert mean_curve_best([np.array([0.7, 0.6])]) == 1


def test_each_fold_booster_is_fitted_on_its_own_past_and_cut_at_the_shared_tree_count() -> None:
    from sklearn.metrics import roc_auc_score

    from training.dataset import TrainingSet
    from training.evaluation import fold_boosters
    from training.origins import rolling_origins
    from training.tuning import dataset_of

    data = TrainingSet.from_frame(linear_world(3000, 3), REACHABILITY)
    folds = rolling_origins(data.times, data.labels, pd.Timedelta(days=14))
    params = {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": 0.1,
        "num_leaves": 7,
        "verbosity": -1,
        "feature_pre_filter": False,
    }
    boosters, trees = fold_boosters(params, dataset_of(data), folds, 400)
    assert len(boosters) == len(folds) and 1 <= trees < 400
    for booster, fold in zip(boosters, folds, strict=True):
        assert booster.num_trees() <= trees  # the trees alone, cut at the shared count
        assert roc_auc_score(data.labels[fold.valid], booster.predict(data.values[fold.valid])) > 0.6
