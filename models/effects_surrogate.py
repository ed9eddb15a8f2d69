"""The surrogate learner of per-case action effects, for ``ActionEffects(method="surrogate")``.

An action reaches the 90-day outcome through what it did at once: the outcome the ledger records
with it (``reached``, ``no_answer``, ``promise_to_pay``, ``agreement`` ...). The 90-day label is one
noisy draw of everything that followed (about five more actions in 90 days); the immediate
outcome is the action's own doing. So (a surrogate index, Athey et al. 2019)::

    P(settled in 90 days | a now, x) = sum over o of P(o | a, x) x V(o, x)

- ``P(o | a, x)``: per action, a multiclass LightGBM model of the immediate outcome on that
  action's decisions, weighted by inverse propensity like the T-learner (large, well-measured
  differences: a call reaches where a letter does not);
- ``V(o, x)``: one binary LightGBM model of the 90-day label on every decision, the immediate
  outcome as a categorical feature and the action *not* a feature: what follows an outcome
  depends on the debtor and the outcome, not on which action produced it (the assumption;
  where it fails, the holdout choice among candidates prefers another method).

With ``pooled_outcomes``, ``P(o | a, x)`` is one multiclass model over every supported action's
decisions, the action a categorical feature (an S-learner of the immediate outcome: actions share
what they have in common about a debtor, and the trees split on the action where it matters).

Outcomes seen in fewer than ``MIN_OUTCOME_SHARE`` of decisions are merged into one class.

With ``settled_value`` (the default), an immediate outcome that is itself a settlement
(``SETTLED_OUTCOMES``: agreement, paid, partial_paid) has V = 1 by the label's definition (the
90-day label counts the action's own outcome), and ``V(o, x)`` is fitted on the other decisions
only (:func:`value_rows`, :func:`fixed_values`). Learnt, V(agreement, x) came out at 0.2-0.4 at a
snapshot's cases (about 1 % of decisions settle at once, and the trees' splits on the outcome mix
with the features, so the value model extrapolated it badly): the settling channel, the one through
which actions in the negotiation stage differ most, was cut four-fold against the noise of the others.
Such outcomes are never merged into ``OTHER``. With ``settle_adjust`` the pooled model's odds of
settling at once are adjusted per action (:mod:`models.effects_rare`, applied in :func:`settle_odds`
and :func:`models.effects_prepared.prepared_odds`).

``members`` bootstrap refits (each decision weighted by a Poisson(1) draw of its case, so that a
case's decisions are kept or dropped together; both models refitted with the tree counts found
for the main ones) give each estimate an interval: :func:`member_odds` is the odds of one member.
With ``bag`` = k, k more refits of V(o, x) on every decision (other seeds for LightGBM's row and
feature subsampling, the same tree counts) are kept, and ``outcome_bag`` = m (None: k) more of
P(o | a, x); each model's estimate is the mean of its fits' raw scores (log-odds; logits): one
history's ranking of actions varies with the seed about as much as between settings (measured:
shares of 0.663 to 0.725 over three seeds on one world), and the mean removes much of that
variance. Refits of V are cheap to predict (once per case and outcome class), refits of P are not
(once per case and action). Bootstrap members make weaker estimates (each sees about 63 % of the
cases) and stay for the interval only.

Predictions of a pooled surrogate go through prepared boosters (:mod:`models.effects_prepared`).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from concord.vocabulary import SETTLED_OUTCOMES
from models.effects_dr import _train, refit
from models.effects_rare import SettleAdjust, adjusted, fit_settle_adjust

VALUE = "~value"  # the key of V(o, x) among the boosters
OUTCOMES = "~outcomes"  # the key of the pooled P(o | a, x), when there is one
MIN_OUTCOME_SHARE = 0.005
OTHER = "~other"
BAG = "bag:"  # the prefix of the bagged refits' keys among the members


def outcome_codes(outcomes: np.ndarray, always: tuple[str, ...] = ()) -> tuple[tuple[str, ...], np.ndarray]:
    """The outcome classes (frequent outcomes and those of ``always`` that occur, then ``OTHER``) and
    each decision's class index."""
    values = np.asarray(outcomes, dtype=object).astype(str)
    names, counts = np.unique(values, return_counts=True)
    kept = [
        str(n) for n, c in zip(names, counts, strict=True) if c >= MIN_OUTCOME_SHARE * len(values) or str(n) in always
    ]
    classes = (*kept, OTHER)
    lookup = {name: j for j, name in enumerate(kept)}
    codes = np.array([lookup.get(v, len(kept)) for v in values], dtype=np.int32)
    return classes, codes


def case_resample(groups: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson(1) bootstrap weights per row, one draw per group (case) when ``groups`` is given."""
    if groups is None:
        return rng.poisson(1.0, n).astype(np.float64)
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    return rng.poisson(1.0, int(inverse.max()) + 1 if n else 0).astype(np.float64)[inverse]


def fixed_values(classes: tuple[str, ...]) -> dict[int, float]:
    """Class index -> V for the outcomes whose value is known without a model: a settlement now
    settles within the horizon (1)."""
    return {k: 1.0 for k, name in enumerate(classes) if name in SETTLED_OUTCOMES}


def value_rows(classes: tuple[str, ...], o: np.ndarray, settled_value: bool) -> np.ndarray:
    """The decisions ``V(o, x)`` is fitted on: all, or with ``settled_value`` those whose outcome
    does not settle (their V is fixed at 1)."""
    fixed = fixed_values(classes) if settled_value else {}
    return ~np.isin(o, list(fixed))


def bag_counts(estimator: Any) -> tuple[int, int]:
    """The bagged refits of V(o, x) (``bag``) and of P(o | a, x) (``outcome_bag``, None: as ``bag``)."""
    bag = int(getattr(estimator, "bag", 0))
    outcome_bag = getattr(estimator, "outcome_bag", None)
    return bag, bag if outcome_bag is None else int(outcome_bag)


def fit_surrogate(
    estimator: Any,
    X: np.ndarray,
    codes: np.ndarray,
    y: np.ndarray,
    outcomes: np.ndarray,
    weight: np.ndarray,
    names: tuple[str, ...],
    groups: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[dict[str, lgb.Booster], dict[str, int], tuple[str, ...], dict[str, list[lgb.Booster]], np.ndarray]:
    """Boosters (``VALUE`` and the outcome model: pooled ``OUTCOMES`` or one per supported action),
    tree counts, outcome classes, per booster key ``estimator.members`` bootstrap refits, and each
    decision's outcome class."""
    X = np.asarray(X, dtype=np.float32)
    settled_value = bool(getattr(estimator, "settled_value", False))
    classes, o = outcome_codes(outcomes, SETTLED_OUTCOMES if settled_value else ())
    rounds, valid, stop = estimator.n_estimators, estimator.valid_fraction, estimator.early_stopping_rounds
    models: dict[str, lgb.Booster] = {}
    trees: dict[str, int] = {}
    v_rows = value_rows(classes, o, settled_value)
    data, y_v = np.column_stack([X, o.astype(np.float32)])[v_rows], y[v_rows]
    value_params = estimator._params(len(data))
    models[VALUE], trees[VALUE] = _train(value_params, data, y_v, None, rounds, valid, stop, categorical=[X.shape[1]])
    count = int(getattr(estimator, "members", 0))
    rng = rng if rng is not None else np.random.default_rng(estimator.random_state)
    draws = [case_resample(groups, len(X), rng) for _ in range(count)]
    seeds = [int(rng.integers(1 << 30)) for _ in range(count)]
    members: dict[str, list[lgb.Booster]] = {
        VALUE: [
            refit(value_params, data, y_v, draw[v_rows], trees[VALUE], [X.shape[1]], seed)
            for draw, seed in zip(draws, seeds, strict=True)
        ]
    }
    bag, outcome_bag = bag_counts(estimator)
    bag_seeds = [int(rng.integers(1 << 30)) for _ in range(max(bag, outcome_bag))]
    ones = np.ones(len(data))
    members[BAG + VALUE] = [
        refit(value_params, data, y_v, ones, trees[VALUE], [X.shape[1]], seed) for seed in bag_seeds[:bag]
    ]
    if getattr(estimator, "pooled_outcomes", False):
        keep = np.isin(codes, [names.index(a) for a in estimator.supported_])
        data = np.column_stack([X[keep], codes[keep].astype(np.float32)])
        params = {**estimator._params(int(keep.sum())), "objective": "multiclass", "num_class": len(classes)}
        target = o[keep].astype(np.float64)
        models[OUTCOMES], trees[OUTCOMES] = _train(
            params, data, target, weight[keep], rounds, valid, stop, categorical=[X.shape[1]]
        )
        members[OUTCOMES] = [
            refit(params, data, target, weight[keep] * draw[keep], trees[OUTCOMES], [X.shape[1]], seed)
            for draw, seed in zip(draws, seeds, strict=True)
        ]
        members[BAG + OUTCOMES] = [
            refit(params, data, target, weight[keep], trees[OUTCOMES], [X.shape[1]], seed)
            for seed in bag_seeds[:outcome_bag]
        ]
        return models, trees, classes, members, o
    for name in estimator.supported_:
        rows = codes == names.index(name)
        params = {**estimator._params(int(rows.sum())), "objective": "multiclass", "num_class": len(classes)}
        target = o[rows].astype(np.float64)
        models[name], trees[name] = _train(params, X[rows], target, weight[rows], rounds, valid, stop)
        members[name] = [
            refit(params, X[rows], target, weight[rows] * draw[rows], trees[name], None, seed)
            for draw, seed in zip(draws, seeds, strict=True)
        ]
        members[BAG + name] = [
            refit(params, X[rows], target, weight[rows], trees[name], None, seed) for seed in bag_seeds[:outcome_bag]
        ]
    return models, trees, classes, members, o


def settle_adjustment(
    estimator: Any, X: np.ndarray, codes: np.ndarray, o: np.ndarray, weight: np.ndarray
) -> SettleAdjust | None:
    """With ``settle_adjust`` = k > 0 and a pooled outcome model, the fitted ``estimator``'s per-action
    adjustment of the odds of settling at once on the k features whose interaction with the action its
    residuals call for most (:mod:`models.effects_rare`; ``o``: each decision's outcome class, as
    :func:`fit_surrogate` coded it); else None."""
    settling = [k for k, name in enumerate(estimator.outcomes_) if name in SETTLED_OUTCOMES]
    if estimator.settle_adjust <= 0 or OUTCOMES not in estimator.models_ or not settling:
        return None
    return fit_settle_adjust(
        estimator.models_[OUTCOMES],
        np.asarray(X, dtype=np.float32),
        codes,
        o,
        weight,
        settling,
        [estimator.actions_.index(a) for a in estimator.supported_],
        estimator.settle_adjust,
        estimator.settle_lambda,
        estimator.settle_knots,
    )


def values_by_outcome(
    models: dict[str, lgb.Booster],
    X: np.ndarray,
    classes: tuple[str, ...],
    num_threads: int = 0,
    fixed: dict[int, float] | None = None,
) -> np.ndarray:
    """(rows, outcome classes) V(o, x); the classes of ``fixed`` (class index -> V) take their
    value without a prediction."""
    fixed = fixed or {}
    out = np.empty((len(X), len(classes)))
    data = np.column_stack([X, np.zeros(len(X), dtype=np.float32)])
    for k in range(len(classes)):
        if k in fixed:
            out[:, k] = fixed[k]
            continue
        data[:, -1] = k
        out[:, k] = models[VALUE].predict(data, num_threads=num_threads)
    return out


def outcome_rows(models: dict[str, lgb.Booster], name: str, code: int, X: np.ndarray) -> tuple[lgb.Booster, np.ndarray]:
    """The booster of P(o | ``name``, x) and its input rows (``code``: the action's index, the
    pooled model's last column)."""
    if OUTCOMES in models:
        return models[OUTCOMES], np.column_stack([X, np.full(len(X), code, dtype=np.float32)])
    return models[name], X


def member_set(
    models: dict[str, lgb.Booster], members: dict[str, list[lgb.Booster]], k: int, prefix: str = ""
) -> dict[str, lgb.Booster]:
    """The boosters of the ``k``-th bootstrap member (``prefix`` ``BAG``: of the ``k``-th bagged
    refit), keyed as ``models`` (the outcome models of actions without one left out)."""
    return {key: members[prefix + key][k] for key in models if len(members.get(prefix + key, ())) > k}


def member_odds(
    models: dict[str, lgb.Booster],
    members: dict[str, list[lgb.Booster]],
    k: int,
    name: str,
    X: np.ndarray,
    classes: tuple[str, ...],
    code: int,
    fixed: dict[int, float] | None = None,
    adjust: SettleAdjust | None = None,
) -> np.ndarray:
    """P(settled | action ``name``, x) by the ``k``-th bootstrap member (both models refitted)."""
    chosen = member_set(models, members, k)
    return settle_odds(chosen, name, X, values_by_outcome(chosen, X, classes, 1, fixed), 1, code, adjust)


def outcome_proba(
    models: dict[str, lgb.Booster], name: str, X: np.ndarray, num_threads: int = 0, code: int = 0
) -> np.ndarray:
    """(rows, outcome classes) P(o | action ``name``, x)."""
    booster, data = outcome_rows(models, name, code, X)
    return np.asarray(booster.predict(data, num_threads=num_threads)).reshape(len(X), -1)


def settle_odds(
    models: dict[str, lgb.Booster],
    name: str,
    X: np.ndarray,
    value: np.ndarray,
    num_threads: int = 0,
    code: int = 0,
    adjust: SettleAdjust | None = None,
) -> np.ndarray:
    """P(settled | action ``name``, x) = sum_o P(o | name, x) V(o, x) (with ``adjust``, the pooled
    model's odds of settling at once adjusted per action: :mod:`models.effects_rare`)."""
    proba = adjusted(outcome_proba(models, name, X, num_threads, code), X, code, adjust if OUTCOMES in models else None)
    return (proba * value[:, : proba.shape[1]]).sum(axis=1)


def bag_sets(
    models: dict[str, lgb.Booster], members: dict[str, list[lgb.Booster]]
) -> tuple[list[dict[str, lgb.Booster]], list[dict[str, lgb.Booster]]]:
    """The booster sets whose V(o, x) are averaged (the main models and each bagged refit of V) and
    those whose P(o | a, x) are (the main models and each bagged refit of the outcome models)."""
    values = len(members.get(BAG + VALUE, []))
    outcomes = max((len(v) for k, v in members.items() if k.startswith(BAG) and k != BAG + VALUE), default=0)
    return (
        [models, *(member_set(models, members, k, BAG) for k in range(values))],
        [models, *(member_set(models, members, k, BAG) for k in range(outcomes))],
    )
