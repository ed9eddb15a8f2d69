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
    return [
        {"case_pk": int(pk), "debtor_key": key, "decision_ts": now}
        for pk, key in zip(rows["case_pk"], rows["debtor_key"], strict=True)
    ]


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
        one_by_one = np.array([fast.probability(matrix[i : i + 1])[0] for i in range(len(matrix))])
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
            np.testing.assert_array_equal(
                np.array(list(one.values())), batch.loc[i].to_numpy(float), err_msg=str(row["case_id"])
            )
    engine.dispose()


def _close(a: object, b: object, where: str = "") -> list[str]:
    """Where two answers differ (floats to 1e-9 relative: the fast scorer equals predict_proba to 1e-12)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _close(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items, not {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _close(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if a == pytest.approx(b, rel=1e-9, abs=1e-9) else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_one_case_path_equals_the_batch_path_for_every_case(world: Settings, monkeypatch) -> None:
    """The service's one-case path (online read, fast scorer, one-case history, the engine on one
    case) gives every case of the world the answer its batch path gives, at the same moment; cases
    whose debtor has several cases are left out (a batch counts their caps together)."""
    import serving.recommend as recommend
    from concord.audit import audit_engine
    from serving.auth import Principal
    from serving.runtime import Runtime
    from serving.schemas import CaseRef

    audit_engine(world).dispose()  # the service's store, migrated (`concord serve` does it first)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    monkeypatch.setattr(recommend, "utcnow", lambda: now)
    runtime = Runtime(world).start()
    try:
        assert runtime.ready(), runtime.problem
        engine = make_engine(world)
        rows = case_rows(engine)
        engine.dispose()
        shared = rows["debtor_key"].ne("") & rows["debtor_key"].duplicated(keep=False)
        supervisor = Principal(key_id=1, role="supervisor")
        refs = [CaseRef(case_id=r.case_id, creditor=r.creditor) for r in rows.itertuples(index=False)]
        batch, errors = recommend.recommend_batch(runtime, supervisor, refs)
        assert not errors and len(batch) == len(rows)
        ignored = {"decision_id", "audit_seq"}
        actions, compared = set(), 0
        for i, (row, together) in enumerate(zip(rows.itertuples(index=False), batch, strict=True)):
            if shared.iloc[i]:
                continue
            alone = recommend.recommend_one(runtime, supervisor, row.case_id, row.creditor)
            a, b = (x.model_dump(exclude=ignored) for x in (alone, together))
            assert _close(a, b) == [], (row.case_id, _close(a, b)[:5])
            actions.add(alone.action)
            compared += 1
        assert compared > len(rows) // 2 and len(actions) >= 3
    finally:
        runtime.stop()
