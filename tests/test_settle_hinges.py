"""``settle_adjust`` with hinges (``settle_knots``): a step in an action's odds of settling at once,
which a linear term in the trait's rank only approximates."""

from __future__ import annotations

import numpy as np

from models.effects_rare import SettleAdjust, adjusted, fit_settle_adjust, rank_knots


class _Flat:
    """An outcome model that knows nothing of the action or the trait (settling at once is class 0, at
    the pooled rate): what the trees give for a rare class they shrink to the pooled effect."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict(self, data: np.ndarray) -> np.ndarray:
        return np.tile([self.p, 1 - self.p], (len(data), 1))


def _advantage(knots: int, seed: int = 1, n: int = 60_000) -> tuple[SettleAdjust, np.ndarray, np.ndarray]:
    """Action 0 settles at once 3 % of the trait's lowest 30 % and 0.4 % of the rest, action 1 1 %
    everywhere; four noise features. The fitted adjustment (two features) and action 0's estimated
    advantage over action 1 on a grid of the trait (noise at 0), with the grid."""
    rng = np.random.default_rng(seed)
    z = rng.random(n)
    codes = rng.integers(0, 2, n)
    p = np.where(codes == 0, np.where(z < 0.3, 0.03, 0.004), 0.01)
    o = (rng.random(n) >= p).astype(np.int64)  # class 0: settled at once
    X = np.column_stack([z, rng.normal(size=(n, 4))]).astype(np.float32)
    flat = _Flat(float((o == 0).mean()))
    adjust = fit_settle_adjust(flat, X, codes, o, np.ones(n), [0], [0, 1], 2, 1.0, knots)  # type: ignore[arg-type]
    grid = np.column_stack([np.linspace(0, 1, 101), np.zeros((101, 4))]).astype(np.float32)
    base = flat.predict(grid)
    return adjust, adjusted(base, grid, 0, adjust)[:, 0] - adjusted(base, grid, 1, adjust)[:, 0], grid[:, 0]


def test_hinges_recover_the_sign_past_a_step_that_the_linear_term_misses() -> None:
    """Just past the step (trait 0.35-0.5) action 0 is truly worse (-0.006): the linear term, its
    slope fitted to the step, puts it level there (+0.0001 at this seed; -0.0006 to +0.0017 over seeds
    0-7), the hinges below (-0.0010; -0.0012 to +0.0005, the sign right at six of the eight seeds: the
    ridge keeps the changes of slope small). Both choose the trait first and keep action 0 best below
    the step (truly +0.02) and worse above it."""
    linear, linear_gap, trait = _advantage(0)
    hinged, hinged_gap, _ = _advantage(3)
    past = (trait > 0.35) & (trait < 0.5)
    assert linear.columns[0] == 0 and hinged.columns[0] == 0
    assert linear.knots == () and hinged.knots == rank_knots(3) == (-0.25, 0.0, 0.25)
    assert len(hinged.beta[0]) == 1 + 2 * (1 + 3)  # intercept, two ranks, three hinges each
    assert linear_gap[past].mean() > -0.0002  # the sign missed (or nothing seen)
    assert hinged_gap[past].mean() < -0.0007  # the sign right
    assert linear_gap[trait < 0.25].mean() > 0.01 and hinged_gap[trait < 0.25].mean() > 0.01
    assert linear_gap[trait > 0.6].mean() < 0 and hinged_gap[trait > 0.6].mean() < 0


def test_an_adjustment_without_knots_is_the_linear_one() -> None:
    """An adjustment pickled before the hinges (no ``knots`` attribute of its own) predicts as before."""
    adjust = SettleAdjust([0], np.linspace(0, 1, 101)[:, None], [0], {0: np.array([0.1, -0.5])})
    del adjust.__dict__["knots"]  # as unpickled from a model fitted before the hinges
    X = np.linspace(0, 1, 11)[:, None].astype(np.float32)
    assert np.array_equal(adjust.design(X), adjust.ranks(X))
    proba = np.tile([0.01, 0.99], (11, 1))
    expected = 1 / (1 + np.exp(-(np.log(0.01 / 0.99) + adjust.ranks(X) @ adjust.beta[0])))
    assert np.allclose(adjusted(proba, X, 0, adjust)[:, 0], expected)


def test_the_surrogate_passes_its_knots_to_the_adjustment() -> None:
    """``ActionEffects(settle_knots=3)``: the fitted adjustment has three hinges per feature, and the
    estimates stay probabilities."""
    from models.effects import ActionEffects
    from tests.test_action_effects import _rare_interaction_world, logged

    data = _rare_interaction_world(n=6000)
    model = ActionEffects(method="surrogate", pooled_outcomes=True, members=0, settle_adjust=2, settle_knots=3).fit(
        **logged(data)
    )
    adjust = model._adjust()
    assert adjust is not None and adjust.knots == (-0.25, 0.0, 0.25)
    assert all(len(beta) == 1 + 2 * 4 for beta in adjust.beta.values())
    p = model.predict_actions(data.values[:200], list(model.supported_))
    assert ((p > 0) & (p < 1)).all()
