"""Compiled forests give LightGBM's raw scores for every code of the last input, bit for bit."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from models.effects_forest import compile_forest, raw_scores
from models.effects_trees import split_on


def _booster(objective: str, params: dict) -> tuple[np.ndarray, lgb.Booster]:
    rng = np.random.default_rng(3)
    n = 3000
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[rng.random((n, 6)) < 0.15] = np.nan  # missing values
    X[rng.random((n, 6)) < 0.15] = 0.0  # zeros (missing where zero_as_missing)
    X[:, 2] = np.where(rng.random(n) < 0.1, 1e-36, X[:, 2])  # read as zero by LightGBM
    X[:, 5] = rng.integers(0, 7, n)  # the code: an action or an outcome class
    signal = np.nan_to_num(X[:, 0]) + (X[:, 5] % 3) * np.nan_to_num(X[:, 1]) + (X[:, 5] == 4)
    y = (signal + rng.normal(size=n) > 1).astype(float) if objective == "binary" else np.digitize(signal, [-1, 0.5, 2])
    base = {
        "objective": objective,
        "verbosity": -1,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        **({"num_class": 4} if objective == "multiclass" else {}),
    }
    booster = lgb.train({**base, **params}, lgb.Dataset(X, y, categorical_feature=[5]), num_boost_round=25)
    return X, booster


@pytest.mark.parametrize("objective", ["binary", "multiclass"])
@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_a_compiled_forest_scores_every_code_as_lightgbm_does(objective: str, params: dict) -> None:
    X, booster = _booster(objective, params)
    x = X[:500, :5]
    wanted = np.random.default_rng(4).random((500, 7)) < 0.6
    for boosters in ([booster], list(split_on(booster, 5)[:2])):  # whole, or split into shared and specific
        forest = compile_forest(boosters, 7)
        assert len(forest.group_code) < 7 * len(forest.tree_root)  # codes share leaves
        raw = raw_scores(forest, x, wanted)
        for code in range(7):
            data = np.column_stack([x, np.full(len(x), code, dtype=np.float32)])
            expected = np.asarray(booster.predict(data, raw_score=True)).reshape(len(x), -1)
            rows = wanted[:, code]
            np.testing.assert_array_equal(raw[rows, code], expected[rows])
            assert not raw[~rows, code].any()


def test_the_surrogate_predicts_a_batch_through_forests_as_through_lightgbm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default surrogate (a bagged refit of V, the settling adjustment): the same odds, for
    the wanted rows only, whichever path a batch takes."""
    from models import effects_prepared
    from models.effects import ActionEffects
    from tests.test_action_effects import _outcome_world, logged

    data = _outcome_world(n=6000, seed=9)
    model = ActionEffects(
        method="surrogate", pooled_outcomes=True, n_estimators=60, members=0, bag=1, outcome_bag=0, settle_adjust=2
    ).fit(**logged(data))
    grid = (np.random.default_rng(1).random((3000, 4)) * np.array([1, 9000, 1, 90])).astype(np.float32)
    grid[::7, 1] = np.nan
    names = ["voice_call", "sms_warning", "lawyer_letter", "close"]
    wanted = np.random.default_rng(2).random((3000, 4)) < 0.5
    monkeypatch.setattr(effects_prepared, "FOREST_ROWS", 10**9)
    slow = model.predict_actions(grid, names, wanted)
    monkeypatch.setattr(effects_prepared, "FOREST_ROWS", 1)
    monkeypatch.setattr(effects_prepared, "FOREST_CHUNK", 1000)
    fast = model.predict_actions(grid, names, wanted)
    assert np.array_equal(np.isnan(fast), np.isnan(slow)) and np.isnan(fast[:, 3]).all()
    assert np.nanmax(np.abs(fast - slow)) < 1e-12
