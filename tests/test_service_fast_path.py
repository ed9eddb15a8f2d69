"""The service's fast paths give the batch code's numbers: the booster + ``np.interp`` scorer equals the
champions' ``predict_proba`` (and their contributions), and the one-case history facts equal
``policies.history.contact_facts``, on every case of the session world."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from concord.db import make_engine
from concord.settings import Settings
from features.repo import SETTLEMENT_V1
from features.store.config import feature_store
from features.store.retrieval import online_features
from models.fast_path import FastOdds
from policies.cases import case_rows
from policies.config import load_policy
from policies.history import contact_facts, load_events, load_resolutions
from policies.history_one import ledger_events, one_case_facts, resolution_times
from tests.conftest import copy_world
from training.scoring import champion


def every_case(settings: Settings, now: dt.datetime) -> list[dict]:
    """One online entity row per case of the world's ledger, all at ``now``."""
    engine = make_engine(settings)
    rows = case_rows(engine)
    engine.dispose()
    return [{"case_pk": int(pk), "debtor_key": key, "decision_ts": now}
            for pk, key in zip(rows["case_pk"], rows["debtor_key"], strict=True)]


@pytest.fixture(scope="module")
def world(service_world: str, tmp_path_factory) -> Settings:
    return Settings.from_env(copy_world(service_world, tmp_path_factory.mktemp("fast-path")))


def test_fast_scores_equal_predict_proba(world: Settings) -> None:
    entities = every_case(world, dt.datetime.now(dt.UTC))
    values = online_features(world, entities, SETTLEMENT_V1, store=feature_store(world))
    for name in ("reachability", "settlement"):
        model, _ = champion(world, name)
        fast = FastOdds(model)
        matrix = np.vstack([fast.row({k: v[i] for k, v in values.items()}) for i in range(len(entities))])
        frame = pd.DataFrame(matrix, columns=list(fast.names))
        one_by_one = np.array([fast.probability(matrix[i:i + 1])[0] for i in range(len(matrix))])
        np.testing.assert_allclose(one_by_one, model.predict_proba(frame)[:, 1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast.contributions(matrix), model.contributions(frame).to_numpy(), atol=1e-12)
        assert np.unique(one_by_one).size > 20  # a real spread of scores, not a constant


def test_one_case_history_equals_the_batch_history(world: Settings) -> None:
    engine = make_engine(world)
    catalogue = load_policy().catalogue
    now = dt.datetime.now(dt.UTC)
    rows = case_rows(engine)
    rows["decision_ts"] = pd.Timestamp(now)
    batch = contact_facts(rows, load_events(engine, now), catalogue, load_resolutions(engine, now))
    assert batch.to_numpy().sum() > 0
    with engine.connect() as connection:
        for i, row in rows.iterrows():
            events = ledger_events(connection, int(row["case_pk"]), str(row["debtor_key"]), now)
            resolved = resolution_times(connection, int(row["case_pk"]), now)
            one = one_case_facts(int(row["case_pk"]), now.timestamp(), events, catalogue, resolved)
            assert list(one) == list(batch.columns)
            np.testing.assert_array_equal(np.array(list(one.values())), batch.loc[i].to_numpy(float),
                                          err_msg=str(row["case_id"]))
    engine.dispose()
