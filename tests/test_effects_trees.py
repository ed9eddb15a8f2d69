"""Tree surgery for cheaper surrogate predictions: exact splits, merged bags, the prepared path."""

from __future__ import annotations

import copy

import lightgbm as lgb
import numpy as np
import pytest

from models.effects_trees import merged, split_on


def _fits(objective: str, seeds: int = 3) -> tuple[np.ndarray, list[lgb.Booster]]:
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 4] = rng.integers(0, 4, n)  # a categorical last input, as the action or the outcome
    if objective == "binary":
        y = (X[:, 0] + 0.5 * X[:, 4] * X[:, 1] + rng.normal(size=n) > 1).astype(float)
    else:
        y = ((X[:, 0] > 0).astype(int) + (X[:, 4] > 2) + (X[:, 1] > 1)).astype(float)
    params = {
        "objective": objective,
        "verbosity": -1,
        "num_leaves": 7,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        **({"num_class": 4} if objective == "multiclass" else {}),
    }
    return X, [
        lgb.train({**params, "seed": s}, lgb.Dataset(X, y, categorical_feature=[4]), num_boost_round=30)
        for s in range(seeds)
    ]


@pytest.mark.parametrize("objective", ["binary", "multiclass"])
def test_a_booster_split_on_an_input_adds_up_to_itself_and_one_part_ignores_that_input(objective: str) -> None:
    X, (booster, *_) = _fits(objective)
    shared, specific, share = split_on(booster, 4)
    assert 0 < share < 1
    raw = booster.predict(X, raw_score=True)
    assert np.allclose(shared.predict(X, raw_score=True) + specific.predict(X, raw_score=True), raw, atol=1e-12)
    other = X.copy()
    other[:, 4] = (other[:, 4] + 1) % 4  # another action: the shared part cannot tell
    assert np.array_equal(shared.predict(other, raw_score=True), shared.predict(X, raw_score=True))
    assert not np.allclose(specific.predict(other, raw_score=True), specific.predict(X, raw_score=True))


@pytest.mark.parametrize("objective", ["binary", "multiclass"])
def test_merged_boosters_score_the_mean_of_their_raw_scores(objective: str) -> None:
    X, fits = _fits(objective)
    one = merged(fits)
    assert one.num_trees() == sum(f.num_trees() for f in fits)
    assert np.allclose(
        one.predict(X, raw_score=True), np.mean([f.predict(X, raw_score=True) for f in fits], axis=0), atol=1e-12
    )
    contributions = np.asarray(one.predict(X[:3], pred_contrib=True))  # SHAP values still add up to the score
    width = X.shape[1] + 1
    total = contributions.reshape(3, -1, width).sum(axis=2).squeeze()
    assert np.allclose(total, one.predict(X[:3], raw_score=True), atol=1e-9)


def test_the_prepared_surrogate_predicts_as_the_booster_by_booster_path() -> None:
    """Without bagged refits, the prepared boosters give the same odds as the models they come from
    (for the wanted rows only, NaN elsewhere and for actions left to the prior)."""
    from models.effects import ActionEffects
    from tests.test_action_effects import _outcome_world, logged

    data = _outcome_world(n=6000, seed=9)
    model = ActionEffects(method="surrogate", pooled_outcomes=True, n_estimators=60, members=2).fit(**logged(data))
    assert model.prepared_
    grid = (np.random.default_rng(1).random((300, 4)) * np.array([1, 9000, 1, 90])).astype(np.float32)
    names = ["voice_call", "sms_warning", "lawyer_letter", "close"]
    wanted = np.random.default_rng(2).random((300, 4)) < 0.5
    fast = model.predict_actions(grid, names, wanted)
    plain = copy.copy(model)
    del plain.prepared_
    slow = plain.predict_actions(grid, names, wanted)
    assert np.array_equal(np.isnan(fast), np.isnan(slow)) and np.isnan(fast[:, 3]).all()
    assert np.nanmax(np.abs(fast - slow)) < 1e-12
    assert np.allclose(model.predict_actions(grid, names)[wanted], fast[wanted], equal_nan=True)
