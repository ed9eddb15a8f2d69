"""Why the learned policy falls short of the per-case best action, on a world kept by
``bench_effects`` (``CONCORD_BENCH_KEEP``): ceilings, a learning curve, hidden traits.

    CONCORD_BENCH_KEEP=/tmp/keep python benchmarks/effects_diagnosis.py different [--curve] [--variants a,b]

Figures (each a ``shares_on`` row: the share of the way from a random choice to the per-case
best action, per workflow, ``_allowed`` within the actions the engine allows):

- ``model``: the model ``bench_effects`` trained and registered last (should match its run);
- ``oracle``: the true per-case values (every action the world can take);
- ``observable_truth``: the true P(settled) regressed on the features the effect model sees at
  the snapshot (LightGBM, the action a categorical feature, five folds by case, each case
  predicted by a model that never saw it): the most a learner on these features can reach;
- ``observable_noisy``: the same, but from as many 0/1 draws of the truth as the history has
  decisions (cases drawn at random, the action by the world's logging probabilities), fitted by
  the pooled weighted learner: what the 90-day label's noise leaves at the history's size;
- ``hidden_truth`` (the two worlds of ``tests/foreign_actions``): the observable features plus the
  debtor's hidden traits (willingness, true income): what the features lack;
- ``--curve``: the default method refitted on a quarter, half and all of the history's cases;
- ``--variants``: other ``ActionEffects`` settings (``training.effects.METHODS`` names or
  ``name:key=value;key=value``, values as JSON) refitted on the whole history; with ``--bag K``
  each is the mean of K seeds' fits, with ``--distil`` also a student regression of it, with
  ``--holdout`` also valued against the default on the training holdout (both fitted before it;
  switch-DR and SNIPS, as promotion compares a challenger with the champion);
- ``--seeds 0,1,2``: each variant fitted once per seed (pickled beside the world, ``--reuse`` loads
  them), judged as it is or, with ``--views``, as :class:`BagView` s of its bagged refits
  (``v<A>p<B>[_raw|_odds|_parts]``: the main fit and the first A refits of V(o, x), B of P(o | a, x));
  with ``--time N``, the first seed's fit is also timed over N synthetic cases as each of
  ``--time-views`` (prepared boosters, and ``old_*`` booster by booster);
- ``--version``: the registered action_effects version to judge (default: the newest).

    python benchmarks/effects_diagnosis.py foreign --skip-ceilings --variants 'surrogate:bag=7' \
        --seeds 0,1,2 --views single,v1p0_raw,v3p1_raw,v7p7_raw [--time 100000 --time-views v0p0,v1p0]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_effects import WORLDS, MatrixValue, _case_frame, _read, shares_on  # noqa: E402
from benchmarks.bench_effects import truth_fit as _truth_fit  # noqa: E402


class Averaged:
    """The mean estimate of several fitted ``ActionEffects`` (what bagging their seeds would give)."""

    def __init__(self, models: list) -> None:
        self.models = models
        first = models[0]
        self.method, self.supported_, self.feature_names_in_ = first.method, first.supported_, first.feature_names_in_

    def predict_actions(
        self, X: np.ndarray, actions: Any, wanted: np.ndarray | None = None, num_threads: int = 0
    ) -> np.ndarray:
        return np.mean([m.predict_actions(X, actions, wanted, num_threads) for m in self.models], axis=0)


class BagView:
    """A surrogate fitted with ``bag`` refits, predicting with the main fit and the first
    ``values`` refits of V(o, x) and ``outcome_fits`` refits of P(o | a, x), combined by ``mean``:
    ``odds`` (the mean of each fit's odds: both counts equal), ``parts`` (sum_o of the mean P times
    the mean V), ``raw`` (the mean of the fits' raw scores: log-odds for V, logits for P)."""

    def __init__(self, model: Any, values: int, outcome_fits: int, mean: str = "parts") -> None:
        self.model, self.values, self.outcome_fits, self.mean = model, values, outcome_fits, mean
        self.method, self.supported_, self.feature_names_in_ = model.method, model.supported_, model.feature_names_in_

    def predict_actions(
        self, X: np.ndarray, actions: Any, wanted: np.ndarray | None = None, num_threads: int = 0
    ) -> np.ndarray:
        from models.effects_surrogate import BAG, OUTCOMES, VALUE, member_set

        m = self.model
        X = np.asarray(X, dtype=np.float32)
        sets = [
            m.models_,
            *(member_set(m.models_, m.members_, k, BAG) for k in range(len(m.members_.get(BAG + VALUE, [])))),
        ]
        raw = self.mean == "raw"
        data = np.column_stack([X, np.zeros(len(X), dtype=np.float32)])
        v = []
        for s in sets[: 1 + self.values]:
            out = np.empty((len(X), len(m.outcomes_)))
            for k in range(len(m.outcomes_)):
                data[:, -1] = k
                out[:, k] = s[VALUE].predict(data, raw_score=raw, num_threads=num_threads)
            v.append(out)
        out = np.full((len(X), len(actions)), np.nan)
        for j, name in enumerate(actions):
            if name not in m.supported_:
                continue
            data[:, -1] = m.actions_.index(name)
            p = [
                np.asarray(s[OUTCOMES].predict(data, raw_score=raw, num_threads=num_threads)).reshape(len(X), -1)
                for s in sets[: 1 + self.outcome_fits]
            ]
            if self.mean == "odds":
                out[:, j] = np.mean([(pk * vk).sum(axis=1) for pk, vk in zip(p, v, strict=True)], axis=0)
            elif raw:
                logits = np.mean(p, axis=0)
                proba = np.exp(logits - logits.max(axis=1, keepdims=True))
                proba /= proba.sum(axis=1, keepdims=True)
                out[:, j] = (proba * (1 / (1 + np.exp(-np.mean(v, axis=0))))).sum(axis=1)
            else:
                out[:, j] = (np.mean(p, axis=0) * np.mean(v, axis=0)).sum(axis=1)
        return out if wanted is None else np.where(wanted, out, np.nan)


# name -> (V refits, P refits, how): what --views evaluates of each variant fitted with bag >= 3;
# any "v<A>p<B>" or "v<A>p<B>_<odds|parts|raw>" works too (A, B at most the fit's bag)
VIEWS = {
    "single": (0, 0, "parts"),
    "v3": (3, 0, "parts"),
    "p3": (0, 3, "parts"),
    "both3_odds": (3, 3, "odds"),
    "both3_parts": (3, 3, "parts"),
    "both3_raw": (3, 3, "raw"),
    "v3p1": (3, 1, "parts"),
    "v1p1": (1, 1, "parts"),
    "v3_raw": (3, 0, "raw"),
}


def view_of(name: str) -> tuple[int, int, str]:
    """A ``VIEWS`` entry, or one spelt ``v<A>p<B>[_<mean>]``."""
    if name in VIEWS:
        return VIEWS[name]
    counts, _, mean = name.partition("_")
    values, _, outcome_fits = counts[1:].partition("p")
    return int(values), int(outcome_fits or 0), mean or "parts"


class Student:
    """One pooled LightGBM regression of a teacher's log-odds on the features and the action,
    fitted on the training decisions' features x every supported action (distillation)."""

    def __init__(self, teacher: Any, X: np.ndarray, rounds: int = 600, seed: int = 0) -> None:
        import lightgbm as lgb

        self.method, self.supported_, self.feature_names_in_ = (
            teacher.method,
            teacher.supported_,
            teacher.feature_names_in_,
        )
        names = list(self.supported_)
        p = np.clip(teacher.predict_actions(X, names), 1e-6, 1 - 1e-6)
        rows = np.repeat(np.arange(len(X)), len(names))
        codes = np.tile(np.arange(len(names)), len(X)).astype(np.float32)
        data = np.column_stack([X[rows], codes])
        target = np.log(p / (1 - p)).reshape(-1)
        params = {
            "objective": "regression",
            "learning_rate": 0.1,
            "num_leaves": 63,
            "min_data_in_leaf": 20,
            "verbosity": -1,
            "num_threads": 1,
            "seed": seed,
            "max_cat_to_onehot": 64,
        }
        self.booster = lgb.train(
            params, lgb.Dataset(data, target, categorical_feature=[data.shape[1] - 1]), num_boost_round=rounds
        )
        self.names = names

    def predict_actions(
        self, X: np.ndarray, actions: Any, wanted: np.ndarray | None = None, num_threads: int = 0
    ) -> np.ndarray:
        out = np.full((len(X), len(actions)), np.nan)
        for j, name in enumerate(actions):
            if name in self.names:
                data = np.column_stack([X, np.full(len(X), self.names.index(name), dtype=np.float32)])
                out[:, j] = 1 / (1 + np.exp(-np.asarray(self.booster.predict(data, num_threads=num_threads))))
        return out


def timing_copies(fit: Any, views: list[str]) -> dict[str, Any]:
    """Copies of a surrogate fitted with bagged refits that predict as ``views`` say (``view_of``
    names): ``old_<view>`` by the booster-by-booster path (no prepared boosters; the mean of each
    fit's V and of each fit's P), ``<view>`` from ``models.effects_prepared.prepared`` boosters
    (the mean of raw scores)."""
    import copy

    from models.effects_prepared import prepared
    from models.effects_surrogate import BAG, VALUE

    copies = {}
    for view in views:
        values, outcome_fits, _ = view_of(view)
        counts = {BAG + VALUE: values}
        out = copy.copy(fit)
        out.members_ = {
            k: (v[: counts.get(k, outcome_fits)] if k.startswith(BAG) else v) for k, v in fit.members_.items()
        }
        out.__dict__.pop("prepared_", None)
        copies[f"old_{view}"] = out
        fast = copy.copy(out)
        fast.prepared_ = prepared(out.models_, out.members_)
        copies[view] = fast
    return copies


def time_decisions(values: dict[str, Any], n: int, rounds: int = 2) -> dict[str, float]:
    """Seconds of ``PolicyEngine.decide`` over ``n`` of bench_policy's synthetic cases (history
    facts built once) per action value, the values taken in turn ``rounds`` times (the least of
    each kept: the machine is shared, and a turn each cancels drift in its load)."""
    from benchmarks.bench_policy import synthetic_cases, synthetic_events
    from policies.config import load_policy
    from policies.engine import PolicyEngine
    from policies.facts import Facts
    from policies.history import contact_facts

    policy = load_policy()
    cases = synthetic_cases(n)
    frame = cases.join(contact_facts(cases, synthetic_events(cases), policy.catalogue))
    best = {name: float("inf") for name in values}
    for _ in range(rounds):
        for name, value in values.items():
            engine = PolicyEngine(policy, value)
            started = time.perf_counter()
            engine.decide(Facts.from_frame(frame))
            best[name] = min(best[name], time.perf_counter() - started)
            print("time", name, f"{best[name]:.1f} s", os.getloadavg(), flush=True)
    return {name: round(seconds, 2) for name, seconds in best.items()}


def _short(row: dict) -> dict:
    return {
        name: {k: v for k, v in entry.items() if k.startswith("share_") and "constant" not in k}
        for name, entry in row.items()
        if isinstance(entry, dict)
    }


def _hidden(world: str, frame: Any, cases: int = 0) -> np.ndarray | None:
    """Per case row of ``frame``: willingness, log income, ability (the world's own traits;
    ``cases``: the world's size when not ``bench_effects``'s)."""
    if world not in ("different", "foreign"):
        return None
    from tests.foreign_actions import Debtors

    n, seed = WORLDS[world]
    n = cases or n
    d = Debtors(np.random.default_rng(seed), n)
    able = np.log(d.income / 5000) + 0.8 * d.house
    index = frame["case_id"].str[2:].astype(int).to_numpy()
    return np.column_stack([d.willing, np.log(d.income), able])[index].astype(np.float32)


def _noisy_fit(
    x: np.ndarray, truth: Any, n_actions: int, draws: int, features: list[str], catalogue: Any, seed: int = 0
) -> np.ndarray:
    """(cases, actions) odds from the pooled weighted learner fitted on ``draws`` 0/1 outcomes of
    the truth (case at random, action by the logging probabilities); every case predicted by a
    model fitted on draws of the other half of the cases."""
    from models.effects import ActionEffects

    rng = np.random.default_rng(seed)
    half = rng.integers(0, 2, len(x))
    out = np.full((len(x), n_actions), np.nan)
    names = list(catalogue.names)
    for k in (0, 1):
        rows = truth[half[truth["i"].to_numpy()] != k]
        cases = rows["i"].unique()
        chosen_cases = rng.choice(cases, draws)
        grouped = {c: g for c, g in rows.groupby("i")}
        act, p, mu, who = [], [], [], []
        for c in chosen_cases:
            g = grouped[c]
            w = g["logging_probability"].to_numpy(dtype=float)
            w = w / w.sum() if w.sum() > 0 else np.full(len(g), 1 / len(g))
            r = rng.choice(len(g), p=w)
            act.append(names[int(g["j"].iloc[r])])
            p.append(float(g["p_settle_90d"].iloc[r]))
            mu.append(float(w[r]))
            who.append(c)
        y = (rng.random(draws) < np.asarray(p)).astype(float)
        model = ActionEffects(method="pooled", members=0).fit(
            x[np.asarray(who)], np.asarray(act), y, np.asarray(mu), features
        )
        test = np.flatnonzero(half == k)
        out[test] = model.predict_actions(x[test], names)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("world")
    parser.add_argument("--curve", action="store_true")
    parser.add_argument("--variants", default="")
    parser.add_argument("--skip-ceilings", action="store_true")
    parser.add_argument("--bag", type=int, default=1, help="each variant: the mean of this many seeds' fits")
    parser.add_argument("--distil", action="store_true", help="each variant: also a student of it (one regression)")
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="also value each variant against the default on the training holdout (switch-DR)",
    )
    parser.add_argument("--cases", type=int, default=0, help="the world's size, when not bench_effects'")
    parser.add_argument("--seeds", default="", help="each variant: one fit per seed (comma-separated), judged apart")
    parser.add_argument("--reuse", action="store_true", help="with --seeds: load the fits an earlier run saved")
    parser.add_argument("--views", default="", help="each variant (fitted with bag >= 3): these VIEWS of it")
    parser.add_argument(
        "--time",
        type=int,
        default=0,
        help="time decisions over this many synthetic cases for timing_copies of each fit",
    )
    parser.add_argument(
        "--time-views", default="v0p0,v3p3", help="with --time: the views timed, each also by the old path"
    )
    parser.add_argument("--version", default="", help="the action_effects version to judge (default: the newest)")
    args = parser.parse_args()
    base = Path(os.environ["CONCORD_BENCH_KEEP"]) / args.world
    os.environ.update({"CONCORD_HOME": str(base / "home"), "CONCORD_PSEUDONYM_KEY": "benchmark"})
    os.environ.pop("CONCORD_DATABASE_URL", None)
    import pandas as pd

    from concord.db import make_engine
    from concord.settings import get_settings
    from policies.config import load_policy
    from policies.facts import Facts
    from policies.learned_value import LearnedValue
    from policies.scores import ChampionScorer
    from training import registry
    from training.effects import METHODS, fit_model, logging_propensities, split
    from training.effects_data import logged_decisions
    from training.effects_tracking import compare_on_holdout

    paths = {k: Path(v) for k, v in json.loads((base / "prepared.json").read_text(encoding="utf-8")).items()}
    truth = _read(paths["truth_actions"])
    snapshot = pd.Timestamp(truth["snapshot"].iloc[0])
    snapshot = snapshot.tz_convert("UTC") if snapshot.tzinfo else snapshot.tz_localize("UTC")
    settings = get_settings()
    engine = make_engine(settings)
    policy, scorer = load_policy(), ChampionScorer.champions(settings)
    frame, truth = _case_frame(settings, engine, policy, scorer, truth, snapshot)
    client = registry.configure(settings)
    newest = max(
        (
            v
            for v in (
                registry.version_by_alias(client, "action_effects", alias)
                for alias in (registry.CHAMPION, registry.CHALLENGER)
            )
            if v is not None
        ),
        key=lambda v: int(v.version),
    )
    version = args.version or str(newest.version)
    model = registry.load_version("action_effects", version)
    learned = LearnedValue(model, policy.effects, version)
    x = learned.inputs(Facts.from_frame(frame.copy()))
    n_actions = len(policy.catalogue.names)
    out: dict[str, Any] = {
        "world": args.world,
        "cases": len(frame),
        "truth_rows": len(truth),
        "model_method": model.method,
        "features": len(learned.features),
    }
    started = time.perf_counter()

    def record(label: str, value: Any) -> None:
        out[label] = _short(shares_on(frame, truth, policy, value))
        print(label, json.dumps(out[label]), f"{time.perf_counter() - started:.0f} s", flush=True)

    record("model", learned)
    if not args.skip_ceilings:
        oracle = np.full((len(frame), n_actions), np.nan)
        oracle[truth["i"].to_numpy(), truth["j"].to_numpy()] = truth["p_settle_90d"].to_numpy()
        record("oracle", MatrixValue(oracle, policy.effects))
        record("observable_truth", MatrixValue(_truth_fit(x, truth, n_actions), policy.effects))
        hidden = _hidden(args.world, frame, args.cases)
        if hidden is not None:
            record("hidden_truth", MatrixValue(_truth_fit(np.hstack([x, hidden]), truth, n_actions), policy.effects))
            record("hidden_only_truth", MatrixValue(_truth_fit(hidden, truth, n_actions), policy.effects))
    cache = base / "decisions.pkl"
    if cache.exists():
        data = pickle.loads(cache.read_bytes())
    else:
        data = logged_decisions(settings, snapshot.to_pydatetime())
        cache.write_bytes(pickle.dumps(data))
    out["decisions"] = len(data)
    out["recorded_propensity_share"] = round(float(np.isfinite(data.propensity).mean()), 3)
    if not args.skip_ceilings:
        record(
            "observable_noisy",
            MatrixValue(_noisy_fit(x, truth, n_actions, len(data), learned.features, policy.catalogue), policy.effects),
        )
    propensity = model.propensity_
    mu, _ = logging_propensities(propensity, data)
    cases = data.meta["case_pk"].to_numpy()
    unique = np.unique(cases)
    rng = np.random.default_rng(0)
    order = rng.permutation(unique)
    if args.curve:
        for share in (0.25, 0.5, 1.0):
            keep = np.isin(cases, order[: int(len(order) * share)])
            rows = np.flatnonzero(keep)
            curve_fit = fit_model({**METHODS["surrogate"], "members": 0}, data.rows(rows), mu[rows], propensity)
            record(f"curve_{share}", LearnedValue(curve_fit, policy.effects, "curve"))
    if args.holdout:
        fit_rows, holdout_rows, _ = split(data)
        past, held = data.rows(fit_rows), data.rows(holdout_rows)
        held_frame = pd.DataFrame(held.values, columns=data.features)
        held_frame["action"], held_frame["mu"], held_frame["label"] = held.actions, mu[holdout_rows], held.labels
        default = fit_model({**METHODS["surrogate"], "members": 0}, past, mu[fit_rows], propensity)
    for spec in filter(None, args.variants.split(",")):
        name, _, extra = spec.partition(":")
        settings_v = dict(METHODS[name])
        for item in filter(None, extra.split(";")):
            key, _, value = item.partition("=")
            settings_v[key] = json.loads(value)
        first_seed = int(settings_v.pop("random_state", 0))  # ``random_state=S``: seeds S, S + 1, ...
        if args.seeds:
            for seed in (int(v) for v in args.seeds.split(",")):
                saved = base / f"fit_{spec.replace(':', '_').replace(';', '_')}_seed{seed}.pkl"
                if args.reuse and saved.exists():
                    fit = pickle.loads(saved.read_bytes())
                else:
                    fit = fit_model(
                        {"members": 0, **settings_v, "random_state": first_seed + seed}, data, mu, propensity
                    )
                    saved.write_bytes(pickle.dumps(fit))
                for view in [v for v in args.views.split(",") if v] or ["fit"]:
                    judged = fit if view == "fit" else BagView(fit, *view_of(view))
                    record(f"variant_{spec}_seed{seed}_{view}", LearnedValue(judged, policy.effects, "variant"))
                if args.time and seed == int(args.seeds.split(",")[0]):
                    values = {
                        k: LearnedValue(v, policy.effects, k)
                        for k, v in timing_copies(fit, args.time_views.split(",")).items()
                    }
                    out[f"time_{spec}_seed{seed}"] = time_decisions(values, args.time)
                    print(f"time_{spec}_seed{seed}", json.dumps(out[f"time_{spec}_seed{seed}"]), flush=True)
            continue
        fits = [
            fit_model({"members": 0, **settings_v, "random_state": first_seed + seed}, data, mu, propensity)
            for seed in range(args.bag)
        ]
        fitted: Any = fits[0] if args.bag == 1 else Averaged(fits)
        record(f"variant_{spec}", LearnedValue(fitted, policy.effects, "variant"))
        if args.distil:
            record(f"variant_{spec}_student", LearnedValue(Student(fitted, data.values), policy.effects, "student"))
        if args.holdout:
            challenger = fit_model({"members": 0, **settings_v}, past, mu[fit_rows], propensity)
            challenger.propensity_ = propensity
            figures = compare_on_holdout(challenger, default, held_frame)
            out[f"holdout_{spec}"] = {
                "switch_dr": round(figures["challenger"]["dr"], 5),
                "default_switch_dr": round(figures["champion"]["dr"], 5),
                "snips": round(figures["challenger"]["snips"], 5),
                "default_snips": round(figures["champion"]["snips"], 5),
                "difference": {k: round(v, 5) for k, v in figures["difference"].items()},
            }
            print(f"holdout_{spec}", json.dumps(out[f"holdout_{spec}"]), flush=True)
    engine.dispose()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
