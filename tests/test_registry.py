"""Champion/challenger governance in the real MLflow registry (SQLite, and PostgreSQL for the
production profile): promotion only when the challenger is at least as good on the same
out-of-time holdout, rollback, and the history MLflow does not keep."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from concord.db import make_engine
from concord.settings import Settings
from models.specs import SETTLEMENT
from training import registry
from training.pipeline import fit_and_evaluate, log_and_register


def decisions(n: int = 4000, seed: int = 0, signal: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "case_pk": np.arange(n),
            "debtor_key": [f"{i:032x}" for i in range(n)],
            "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 540, n), unit="D"),
            "creditor_type": rng.choice(["bank", "consumer_finance"], n, p=[0.2, 0.8]),
            "monthly_income": rng.lognormal(8.5, 0.6, n),
            "has_property": (rng.random(n) < 0.3).astype(float),
            "terminated_no_assets": rng.poisson(0.3, n).astype(float),
        }
    )
    logit = (
        signal * (0.9 * np.log(frame["monthly_income"] / 5000) + frame["has_property"] - frame["terminated_no_assets"])
        - 0.5
    )
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["decision_ts"] = frame["event_timestamp"]
    return frame.sort_values("event_timestamp").reset_index(drop=True)


def run_governance(settings: Settings) -> None:
    engine = make_engine(settings)
    frame = decisions()
    good = fit_and_evaluate(SETTLEMENT, frame, {"n_estimators": 150})
    first = log_and_register(settings, engine, good)
    decision = registry.promote(settings, engine, "settlement")
    assert decision.promoted and decision.challenger_version == first

    # A challenger that learnt from corrupted history (labels shuffled before the validated
    # decisions): the champion keeps its place, with both figures shown.
    labels = frame["label"].to_numpy().copy()
    older = int(len(labels) * 0.7)
    labels[:older] = np.random.default_rng(9).permutation(labels[:older])
    noisy = frame.assign(label=labels)
    bad = fit_and_evaluate(SETTLEMENT, noisy, {"n_estimators": 150})
    second = log_and_register(settings, engine, bad)
    refused = registry.promote(settings, engine, "settlement")
    assert not refused.promoted
    assert refused.figures["challenger"]["roc_auc"] < refused.figures["champion"]["roc_auc"] - 0.005
    assert "ROC-AUC" in refused.reason
    client = registry.configure(settings)
    assert str(registry.version_by_alias(client, "settlement", "champion").version) == first

    # An equally good challenger is promoted; rollback restores the first champion.
    again = log_and_register(settings, engine, dataclasses.replace(good))
    accepted = registry.promote(settings, engine, "settlement")
    assert accepted.promoted, accepted.reason
    assert str(registry.version_by_alias(client, "settlement", "champion").version) == again
    back = registry.rollback(settings, engine, "settlement")
    assert back.promoted and str(registry.version_by_alias(client, "settlement", "champion").version) == first

    history = registry.history(engine, "settlement")
    champions = history[history["alias"] == "champion"]["version"].tolist()
    assert champions == [first, again, first]
    assert second not in champions
    engine.dispose()


def test_promotion_rules_rollback_and_history(settings) -> None:
    run_governance(settings)


@pytest.mark.services
def test_mlflow_backend_store_on_postgresql(settings, postgres_url) -> None:
    run_governance(dataclasses.replace(settings, mlflow_tracking_uri=postgres_url))
