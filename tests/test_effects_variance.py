"""The variance tool's share and its bootstrap over cases (benchmarks/effects_variance.py)."""

from __future__ import annotations

import numpy as np

from benchmarks.effects_variance import bootstrap, share


def _parts(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    random = rng.random(n)
    best = random + rng.random(n)
    chosen = random + (best - random) * rng.random(n)
    return np.column_stack([chosen, random, best])


def test_the_share_is_zero_for_a_random_pick_and_one_for_the_best() -> None:
    parts = _parts(100)
    assert share(np.column_stack([parts[:, 1], parts[:, 1], parts[:, 2]])) == 0
    assert share(np.column_stack([parts[:, 2], parts[:, 1], parts[:, 2]])) == 1


def test_the_bootstrap_narrows_with_the_cases_and_a_paired_difference_with_itself_is_zero() -> None:
    small, large = bootstrap(_parts(500), 500), bootstrap(_parts(8000), 500)
    assert small["low"] < small["share"] < small["high"]
    assert 2.5 < small["sd"] / large["sd"] < 6.5  # about sqrt(16) = 4
    parts = _parts(500)
    same = bootstrap(parts, 200, other=parts)
    assert same["share"] == 0 and same["sd"] == 0
