"""Model behaviour: domain constraints hold on random inputs, the pseudonym has no effect,
the estimator follows scikit-learn's contract, calibration is honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.metrics import expected_calibration_error, scores
from models.odds import CalibratedOdds
from models.specs import SETTLEMENT
from training.pipeline import feature_columns


def world(n: int = 6000, seed: int = 0, truth: bool = False):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "monthly_income": rng.lognormal(8.5, 0.6, n),
            "has_property": rng.random(n) < 0.3,
            "terminated_no_assets": rng.poisson(0.3, n),
            "principal": rng.lognormal(9, 0.7, n),
            "noise": rng.normal(size=n),
        }
    )
    logit = (
        0.8 * np.log(frame["monthly_income"] / 5000)
        + 0.9 * frame["has_property"]
        - 0.9 * frame["terminated_no_assets"]
        - 0.3 * np.log(frame["principal"] / 8000)
        - 0.6
    )
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    return (frame, y, p.to_numpy()) if truth else (frame, y)


@pytest.fixture(scope="module")
def settlement_model() -> CalibratedOdds:
    X, y = world()
    return CalibratedOdds(n_estimators=200, monotone=SETTLEMENT.monotone).fit(X.astype(float), y)


@pytest.mark.parametrize(
    ("feature", "direction"), [("monthly_income", 1), ("has_property", 1), ("terminated_no_assets", -1)]
)
def test_domain_directions_hold_on_random_inputs(settlement_model, feature: str, direction: int) -> None:
    rng = np.random.default_rng(1)
    X, _ = world(500, seed=2)
    X = X.astype(float)
    base = settlement_model.predict_proba(X)[:, 1]
    bumped = X.copy()
    bumped[feature] = bumped[feature] + rng.uniform(0.1, 3.0, len(X)) * (bumped[feature].abs().mean() + 1)
    moved = settlement_model.predict_proba(bumped)[:, 1]
    assert np.all(direction * (moved - base) >= -1e-12)


def test_the_pseudonym_is_not_a_feature_and_changes_nothing(settlement_model) -> None:
    X, y = world(300, seed=3)
    frame = X.assign(
        debtor_key=[f"{i:032x}" for i in range(300)],
        case_pk=range(300),
        label=y,
        event_timestamp=pd.Timestamp("2025-01-01", tz="UTC"),
        creditor_type="bank",
    )
    assert "debtor_key" not in feature_columns(frame, SETTLEMENT)
    shuffled = frame.assign(debtor_key=frame["debtor_key"].sample(frac=1, random_state=0).to_numpy())
    columns = feature_columns(frame, SETTLEMENT)
    np.testing.assert_array_equal(
        settlement_model.predict_proba(frame[columns].astype(float)),
        settlement_model.predict_proba(shuffled[columns].astype(float)),
    )


def test_calibrated_and_discriminating_on_fresh_data(settlement_model) -> None:
    X, y, p = world(20000, seed=4, truth=True)
    figures = scores(y, settlement_model.predict_proba(X.astype(float))[:, 1])
    oracle = scores(y, p)
    assert figures["roc_auc"] >= oracle["roc_auc"] - 0.02
    assert figures["ece"] < 0.03


def test_contributions_add_up_to_the_raw_log_odds(settlement_model) -> None:
    X, _ = world(50, seed=5)
    contributions = settlement_model.contributions(X.astype(float))
    raw = settlement_model.booster_.predict(X.astype(float), raw_score=True)
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), raw, rtol=1e-6, atol=1e-6)


def test_ece_of_a_perfect_forecast_is_small() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    assert expected_calibration_error((rng.random(200_000) < p).astype(int), p) < 0.01


def test_labels_do_not_depend_on_timestamp_resolution() -> None:
    # Found by the oracle benchmark: microsecond timestamps made every label 0.
    from training.labels import REACHABILITY, attach_labels

    events = pd.DataFrame(
        {
            "case_pk": [1, 1],
            "at": pd.to_datetime(["2025-01-03", "2025-03-01"], utc=True),
            "outcome": ["reached", "reached"],
        }
    )
    for unit in ("ns", "us", "s"):
        points = pd.DataFrame(
            {
                "case_pk": [1, 1, 1],
                "decision_ts": pd.to_datetime(["2025-01-01", "2025-01-20", "2025-03-01"], utc=True).as_unit(unit),
            }
        )
        # The outcome at the decision time itself counts; one 14 days later does not.
        labels = attach_labels(points, events.assign(at=events["at"].dt.as_unit(unit)), REACHABILITY).tolist()
        assert labels == [1, 0, 1]


@pytest.mark.parametrize(
    ("feature", "direction"), [("monthly_income", 1), ("has_property", 1), ("terminated_no_assets", -1)]
)
def test_the_baseline_keeps_the_domain_directions_even_against_the_data(feature: str, direction: int) -> None:
    # A world where the data point the wrong way for every constrained feature: the baseline,
    # which is registered when it does better, must still never move against the domain.
    from models.baseline import LogisticOdds

    X, _ = world(4000, seed=6)
    logit = -0.8 * np.log(X["monthly_income"] / 5000) - 0.9 * X["has_property"] + 0.9 * X["terminated_no_assets"]
    y = (np.random.default_rng(7).random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    model = LogisticOdds(monotone=SETTLEMENT.monotone).fit(X.astype(float), y)
    base = model.predict_proba(X.astype(float))[:, 1]
    bumped = X.astype(float).assign(**{feature: X[feature] + 1.0 + X[feature].abs().mean()})
    assert np.all(direction * (model.predict_proba(bumped)[:, 1] - base) >= -1e-12)
    contributions = model.contributions(X.astype(float).head(20))
    np.testing.assert_allclose(contributions.sum(axis=1), model.decision_function(X.astype(float).head(20)))
