"""The pipeline learns from a world it has not seen: contract files written by other means
(tests/foreign_world.py, not Concord's simulator) are imported, featurised, trained on and
scored, and the models find the signal that world planted."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from concord.db import make_engine
from features.offline.build import build_offline_tables
from features.store.config import apply
from ingestion.importer import import_file
from tests.foreign_world import build
from training import registry
from training.pipeline import train
from training.scoring import score


def test_import_train_and_score_a_foreign_world(settings, tmp_path) -> None:
    paths = build(tmp_path / "world", n_cases=2500)
    engine = make_engine(settings)
    for table in ("mediators", "cases", "contact_checks", "capacity", "litigation", "events"):
        report = import_file(table, paths[table], settings, engine, received_at=None)
        assert report.rejected == 0, report.rejections[:3]
    build_offline_tables(settings)
    apply(settings)
    as_of = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
    for model in ("reachability", "settlement"):
        result, version = train(settings, engine, model, as_of, params={"n_estimators": 200})
        overall = result.metrics[(result.metrics["group"] == "all") & (result.metrics["estimator"] == "model")].iloc[0]
        # This world decides reach by phone status and settlement by income, property and dead debt.
        assert overall["roc_auc"] > 0.65, (model, overall.to_dict())
        assert registry.promote(settings, engine, model).promoted
    scores = score(settings, engine, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    assert len(scores) > 100
    assert scores[["p_reach", "p_settle"]].apply(lambda c: c.between(0, 1).all()).all()
    assert set(scores["creditor"]) <= {"南岭银行股份有限公司", "北辰消费金融有限公司"}
    assert pd.api.types.is_numeric_dtype(scores["p_reach"]) and scores["p_reach"].nunique() > 5
    engine.dispose()
