"""The pooled surrogate's predictions from prepared boosters, for ``ActionEffects(method="surrogate")``
(:mod:`models.effects_surrogate`) with a pooled outcome model.

Predictions go through :func:`prepared` boosters: each model's fits merged into one booster, split
into the trees that read the outcome (V) or the action (P) and those that do not; the second kind
is predicted once per case (``models.effects_trees``). Exact for a model without refits, and about
half the prediction time of predicting every booster for every outcome class and action. Batches of
at least ``FOREST_ROWS`` cases go through compiled forests (:mod:`models.effects_forest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from models.effects_forest import MAX_CODES, forest_of, raw_scores
from models.effects_rare import SettleAdjust, adjusted
from models.effects_surrogate import BAG, OUTCOMES, VALUE
from models.effects_trees import merged, split_on

FOREST_ROWS = 2000  # batches from this many cases on are predicted by compiled forests (fewer: by LightGBM)
FOREST_CHUNK = 50_000  # cases per forest call (its raw scores: cases x actions x outcome classes)
SHARED = "~shared"  # suffix: the trees that never read the booster's last input (outcome, action)
SPECIFIC = "~specific"  # suffix: the trees that do


def prepared(
    models: dict[str, lgb.Booster], members: dict[str, list[lgb.Booster]], bagged: tuple[str, ...] = (VALUE, OUTCOMES)
) -> dict[str, lgb.Booster]:
    """V(o, x) and the pooled P(o | a, x) ready for :func:`prepared_odds`: each the mean of the
    main fit's and its bagged refits' raw scores (for the keys in ``bagged``; the main fit alone
    for the others), split into the trees that read the last input (the outcome; the action) and
    those that do not, which are the same for every outcome class (every action) of a case."""
    out: dict[str, lgb.Booster] = {}
    for key in (VALUE, OUTCOMES):
        fits = [models[key], *(members.get(BAG + key, []) if key in bagged else [])]
        booster = merged(fits) if len(fits) > 1 else models[key]
        out[key + SHARED], out[key + SPECIFIC], _ = split_on(booster, booster.num_feature() - 1)
    return out


def prepared_values(
    boosters: dict[str, lgb.Booster],
    X: np.ndarray,
    classes: int,
    num_threads: int = 0,
    fixed: dict[int, float] | None = None,
) -> np.ndarray:
    """(rows, outcome classes) V(o, x) from :func:`prepared` boosters; the classes of ``fixed``
    (class index -> V) take their value without a prediction."""
    fixed = fixed or {}
    data = np.column_stack([X, np.zeros(len(X), dtype=np.float32)])
    shared = np.asarray(boosters[VALUE + SHARED].predict(data, raw_score=True, num_threads=num_threads))
    out = np.empty((len(X), classes))
    for k in range(classes):
        if k in fixed:
            out[:, k] = fixed[k]
            continue
        data[:, -1] = k
        raw = shared + boosters[VALUE + SPECIFIC].predict(data, raw_score=True, num_threads=num_threads)
        out[:, k] = 1.0 / (1.0 + np.exp(-raw))
    return out


def prepared_shared_outcomes(boosters: dict[str, lgb.Booster], X: np.ndarray, num_threads: int = 0) -> np.ndarray:
    """(rows, outcome classes) the raw scores of P(o | a, x) that do not depend on the action."""
    data = np.column_stack([X, np.zeros(len(X), dtype=np.float32)])
    return np.asarray(boosters[OUTCOMES + SHARED].predict(data, raw_score=True, num_threads=num_threads)).reshape(
        len(X), -1
    )


def prepared_odds(
    boosters: dict[str, lgb.Booster],
    X: np.ndarray,
    shared: np.ndarray,
    value: np.ndarray,
    code: int,
    num_threads: int = 0,
    adjust: SettleAdjust | None = None,
) -> np.ndarray:
    """P(settled | action ``code``, x) = sum_o P(o | a, x) V(o, x), ``shared`` and ``value`` of
    the same rows as ``X`` (:func:`prepared_shared_outcomes`, :func:`prepared_values`)."""
    data = np.column_stack([X, np.full(len(X), code, dtype=np.float32)])
    raw = shared + np.asarray(
        boosters[OUTCOMES + SPECIFIC].predict(data, raw_score=True, num_threads=num_threads)
    ).reshape(len(X), -1)
    proba = np.exp(raw - raw.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    proba = adjusted(proba, X, code, adjust)
    return (proba * value[:, : proba.shape[1]]).sum(axis=1)


def predict_prepared(
    model: Any, X: np.ndarray, actions: Sequence[str], wanted: np.ndarray | None, num_threads: int
) -> np.ndarray:
    """``ActionEffects.predict_actions`` of the pooled surrogate ``model`` from its prepared
    boosters: V(o, x) and the action-free part of P(o | a, x) once per case asked, the rest once per
    action wanted. Batches of at least ``FOREST_ROWS`` cases go through compiled forests
    (:mod:`models.effects_forest`: the same raw scores, each tree walked once per group of actions
    or outcomes that share its leaf), ``FOREST_CHUNK`` cases at a time."""
    out = np.full((len(X), len(actions)), np.nan)
    columns = [j for j, name in enumerate(actions) if name in model.supported_]
    asked = np.ones(len(X), dtype=bool) if wanted is None else wanted[:, columns].any(axis=1)
    if not columns or not asked.any():
        return out
    where = np.flatnonzero(asked)
    if len(where) >= FOREST_ROWS and len(model.actions_) <= MAX_CODES and len(model.outcomes_) <= MAX_CODES:
        for start in range(0, len(where), FOREST_CHUNK):
            rows = where[start : start + FOREST_CHUNK]
            out[rows] = _forest_odds(
                model, X[rows], actions, columns, None if wanted is None else wanted[rows], num_threads
            )
        return out
    x = X[where]
    value = prepared_values(model.prepared_, x, len(model.outcomes_), num_threads, model._fixed())
    shared = prepared_shared_outcomes(model.prepared_, x, num_threads)
    for j in columns:
        rows = np.arange(len(x)) if wanted is None else np.flatnonzero(wanted[where, j])
        if rows.size:
            out[where[rows], j] = prepared_odds(
                model.prepared_,
                x[rows],
                shared[rows],
                value[rows],
                model.actions_.index(actions[j]),
                num_threads,
                model._adjust(),
            )
    return out


def _forest_odds(
    model: Any, x: np.ndarray, actions: Sequence[str], columns: list[int], wanted: np.ndarray | None, num_threads: int
) -> np.ndarray:
    """:func:`predict_prepared`'s estimates for the rows ``x`` (every row asked) from compiled forests."""
    boosters, fixed, classes = model.prepared_, model._fixed(), len(model.outcomes_)
    values = forest_of([boosters[VALUE + SHARED], boosters[VALUE + SPECIFIC]], classes)
    learned = np.ones((len(x), classes), dtype=bool)
    learned[:, list(fixed)] = False
    value = 1.0 / (1.0 + np.exp(-raw_scores(values, x, learned, num_threads)[:, :, 0]))
    for k, v in fixed.items():
        value[:, k] = v
    codes = [model.actions_.index(actions[j]) for j in columns]
    need = np.zeros((len(x), len(model.actions_)), dtype=bool)
    need[:, codes] = True if wanted is None else wanted[:, columns]
    raw = raw_scores(
        forest_of([boosters[OUTCOMES + SHARED], boosters[OUTCOMES + SPECIFIC]], len(model.actions_)),
        x,
        need,
        num_threads,
    )
    out = np.full((len(x), len(actions)), np.nan)
    for j, code in zip(columns, codes, strict=True):
        rows = np.flatnonzero(need[:, code])
        if rows.size:
            scores = raw[rows, code]
            proba = np.exp(scores - scores.max(axis=1, keepdims=True))
            proba /= proba.sum(axis=1, keepdims=True)
            proba = adjusted(proba, x[rows], code, model._adjust())
            out[rows, j] = (proba * value[rows][:, : proba.shape[1]]).sum(axis=1)
    return out
