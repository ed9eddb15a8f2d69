"""Batch scoring with the champions: every case open at a time, its reach and settle odds, and
how the features at scoring compare with the ones each champion was trained on.

Explanations for one case come from the model's ``pred_contrib`` (SHAP values in log-odds).
The comparison (:mod:`training.skew`) is the drift report ``concord score`` writes beside the
scores and logs to MLflow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from concord import ledger
from concord.settings import Settings
from models.specs import SPECS
from training import labels as label_defs
from training import registry
from training.dataset import ENTITY_COLUMNS
from training.skew import drift_report


def open_cases(engine: Engine, as_of: dt.datetime) -> pd.DataFrame:
    """Cases known at ``as_of`` and not closed then (paid in full, written off or closed): the
    scoring entity rows. A case with an agreement is still open, for its payments, as in the
    training decisions (``training/labels.py``)."""
    as_of_ts = pd.Timestamp(as_of)
    as_of_ts = as_of_ts.tz_convert("UTC") if as_of_ts.tzinfo else as_of_ts.tz_localize("UTC")
    cases, events = label_defs.load_history(engine)
    table = ledger.table(ledger.Case)
    with engine.connect() as connection:
        received = pd.DataFrame(
            connection.execute(select(table.c.id, table.c.received_at)).all(), columns=["case_pk", "received_at"]
        )
    received["received_at"] = pd.to_datetime(received["received_at"], utc=True)
    past = events[events["at"] <= as_of_ts]
    started = past.groupby("case_pk")["at"].min().rename("first_event")
    finished = past[past["outcome"].isin(label_defs.CLOSING_OUTCOMES)]["case_pk"].unique()
    frame = cases.merge(received, on="case_pk").merge(started, on="case_pk", how="left")
    known = frame["first_event"].notna() | (frame["received_at"].notna() & (frame["received_at"] <= as_of_ts))
    frame = frame[known & ~frame["case_pk"].isin(finished)].copy()
    frame["decision_ts"] = as_of_ts
    return label_defs.with_feature_cut(frame).reset_index(drop=True)


def champion(settings: Settings, model: str) -> tuple[Any, str]:
    """The champion estimator of a model and its version."""
    estimator, version = _champion(settings, model)
    return estimator, str(version.version)


def _champion(settings: Settings, model: str) -> tuple[Any, Any]:
    client = registry.configure(settings)
    version = registry.version_by_alias(client, model, registry.CHAMPION)
    if version is None:
        raise LookupError(f"{registry.registered_name(model)} has no champion yet; run `concord train` first")
    return registry.load_version(model, str(version.version)), version


def score_and_compare(settings: Settings, engine: Engine, as_of: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scores (``case_id, creditor, p_reach, p_settle`` and the model versions, for every
    open case) and the drift report of each champion's features (see :func:`training.skew.drift_report`;
    empty for a champion trained before feature profiles were logged)."""
    from features.store.retrieval import historical_features

    cases = open_cases(engine, as_of)
    out = cases[["case_pk", "case_id", "creditor", "creditor_type"]].copy()
    reports = []
    client = registry.configure(settings)
    for model, column in (("reachability", "p_reach"), ("settlement", "p_settle")):
        estimator, version = _champion(settings, model)
        features = historical_features(settings, cases[list(ENTITY_COLUMNS)], SPECS[model].feature_service)
        features = cases[["case_pk"]].merge(features.drop_duplicates("case_pk"), on="case_pk", how="left")
        names = list(estimator.feature_names_in_)
        out[column] = estimator.predict_proba(features[names].astype(float))[:, 1] if len(features) else np.array([])
        out[f"{model}_version"] = str(version.version)
        profile = registry.artifact_json(client, version, "feature_profile.json")
        if profile is not None:
            reports.append(drift_report(profile, features, model).assign(version=str(version.version)))
    drift = (
        pd.concat(reports, ignore_index=True)
        if reports
        else pd.DataFrame(columns=["model", "feature", "present_training", "present_scoring", "psi", "flag", "version"])
    )
    return out.drop(columns=["case_pk"]), drift


def score(settings: Settings, engine: Engine, as_of: dt.datetime) -> pd.DataFrame:
    """``case_id, creditor, p_reach, p_settle`` and the model versions, for every open case."""
    return score_and_compare(settings, engine, as_of)[0]


def log_drift(settings: Settings, drift: pd.DataFrame, as_of: dt.datetime, path: Path) -> None:
    """Log a scoring run's drift report to MLflow (run ``score-<as_of>``): the CSV at ``path``,
    and per model the largest PSI and the number of flagged features."""
    import mlflow

    registry.configure(settings)
    with mlflow.start_run(run_name=f"score-{as_of:%Y%m%dT%H%M%S}"):
        mlflow.set_tags({"kind": "scoring", "as_of": as_of.isoformat()})
        for model, rows in drift.groupby("model"):
            mlflow.log_metrics(
                {f"{model}.psi_max": float(rows["psi"].max()), f"{model}.flagged": float((rows["flag"] != "").sum())}
            )
        mlflow.log_artifact(str(path))
