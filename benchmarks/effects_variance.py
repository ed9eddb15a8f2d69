"""How much of the learned policy's shortfall is variance, on a world kept by ``bench_effects``
(``CONCORD_BENCH_KEEP``): of the evaluation itself (a share computed from a world's few open cases
at the snapshot, bootstrapped by case), of the fit (LightGBM seeds), and of the history's size
(a learning curve, each point over seeds).

    CONCORD_BENCH_KEEP=/tmp/keep python benchmarks/effects_variance.py simulator --seeds 0,1,2,3,4 \
        [--fractions 0.25,0.5] [--boot 2000] [--ceiling-folds 2,5,10] [--reuse]

Every figure is a share of the way from a random choice to the per-case best action (as
``bench_effects.shares_on``), per workflow, on the allowed scope and the headline one:

- ``evaluation``: for one fit, the bootstrap (cases drawn with replacement) standard deviation and
  95 % interval of its share: how precisely a world of this many open cases measures a policy;
  ``paired``: the same for the difference between two seeds' fits (the same cases in both);
- ``seeds``: the share of each seed's fit of the default (``METHODS["surrogate"]``) on every
  decision, their mean and standard deviation (the fit's variance, on fixed cases), and the share
  of the mean of the seeds' estimates (``averaged``: what is left when the fit's noise is averaged);
- ``curve``: the default fitted on a random fraction of the history's cases (another draw of cases
  per seed), per fraction the seeds' shares and mean (the variance of history's size);
- ``--registered N``: also the registered action_effects version N (bench_effects' own model),
  bootstrapped like ``evaluation``;
- ``--fits-from FOLDER``: the fits another world's run pickled (fitted on its history), judged on
  this world's cases instead (other debtors of the same population at the same snapshot date):
  a second, independent measurement of the same fits;
- ``ceiling``: the true odds regressed on the features (``bench_effects.truth_fit``) with 2, 5 or 10
  folds by case (each fitted on a half, 80 % or 90 % of the open cases' truths): whether that
  lower bound of the observable ceiling rises with more truths.

A world not trained by ``bench_effects`` (prepared only: no registered action-effect model) gets its
propensity model fitted here (``LoggingPropensity``, as training does; pickled beside the world).
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

from benchmarks.bench_effects import MatrixValue, _case_frame, _read, truth_fit  # noqa: E402
from benchmarks.effects_diagnosis import Averaged  # noqa: E402

SCOPES = ("allowed", "headline")


def per_case(frame: Any, truth: Any, policy: Any, value: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per workflow and scope, an array (cases, 3): the true value of the engine's pick, the mean
    over the scope's actions (a random choice) and their best (``bench_effects.shares_on``'s terms)."""
    from policies.engine import PolicyEngine
    from policies.facts import Facts

    i, j = truth["i"].to_numpy(), truth["j"].to_numpy()
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in policy.workflows:
        decisions = PolicyEngine(policy.with_workflow(name), value).decide(Facts.from_frame(frame.copy()))
        rows = truth.assign(
            true_value=truth["p_settle_90d"].to_numpy() * decisions.claims.outstanding[i] - policy.catalogue.costs()[j],
            ours=decisions.estimates.value[i, j],
            allowed=decisions.eligible[i, j] & (decisions.blocked_by[i, j] == 0),
        )
        picked = (
            rows.sort_values(["i", "allowed", "ours", "j"], ascending=[True, False, False, True], kind="stable")
            .groupby("i")
            .head(1)
            .set_index("i")["true_value"]
        )
        out[name] = {}
        for scope, pool in (("headline", rows), ("allowed", rows[rows["allowed"]])):
            grouped = pool.groupby("i")["true_value"]
            random, best = grouped.mean(), grouped.max()
            out[name][scope] = np.column_stack(
                [picked.reindex(random.index).to_numpy(), random.to_numpy(), best.to_numpy()]
            )
    return out


def share(parts: np.ndarray) -> float:
    """(sum of picks - sum of random) / (sum of best - sum of random)."""
    return float((parts[:, 0] - parts[:, 1]).sum() / (parts[:, 2] - parts[:, 1]).sum())


def bootstrap(parts: np.ndarray, draws: int = 2000, seed: int = 0, other: np.ndarray | None = None) -> dict:
    """The share's bootstrap over cases (standard deviation, 95 % interval); with ``other`` (the same
    cases' parts for another policy), of the paired difference share - other's share."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(parts), (draws, len(parts)))
    gain, gap = parts[:, 0] - parts[:, 1], parts[:, 2] - parts[:, 1]
    values = gain[idx].sum(axis=1) / gap[idx].sum(axis=1)
    point = share(parts)
    if other is not None:
        values = values - (other[:, 0] - other[:, 1])[idx].sum(axis=1) / gap[idx].sum(axis=1)
        point -= share(other)
    low, high = np.percentile(values, [2.5, 97.5])
    return {
        "share": round(point, 4),
        "sd": round(float(values.std()), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "cases": len(parts),
        # the share weighs each case by its gap (claim-sized): the cases' effective number, and the
        # share of the whole gap that its ten largest cases hold
        "effective_cases": round(float(gap.sum() ** 2 / (gap**2).sum()), 1),
        "top10_gap_share": round(float(np.sort(gap)[-10:].sum() / gap.sum()), 3),
    }


def shares_of(parts: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    """``<workflow>_<scope>`` -> share."""
    return {f"{name}_{scope}": round(share(p), 4) for name, scopes in parts.items() for scope, p in scopes.items()}


def summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per key: the mean and standard deviation (ddof 1) over ``rows``."""
    return {
        key: {
            "mean": round(float(np.mean([r[key] for r in rows])), 4),
            "sd": round(float(np.std([r[key] for r in rows], ddof=1)), 4) if len(rows) > 1 else 0.0,
        }
        for key in rows[0]
    }


class World:
    """A kept world's cases at the snapshot (facts, truths), its logged decisions and propensities."""

    def __init__(self, name: str, history: bool = True) -> None:
        import pandas as pd

        from concord.db import make_engine
        from concord.settings import get_settings
        from policies.config import load_policy
        from policies.scores import ChampionScorer

        self.base = Path(os.environ["CONCORD_BENCH_KEEP"]) / name
        os.environ.update({"CONCORD_HOME": str(self.base / "home"), "CONCORD_PSEUDONYM_KEY": "benchmark"})
        os.environ.pop("CONCORD_DATABASE_URL", None)
        paths = {k: Path(v) for k, v in json.loads((self.base / "prepared.json").read_text(encoding="utf-8")).items()}
        truth = _read(paths["truth_actions"])
        snapshot = pd.Timestamp(truth["snapshot"].iloc[0])
        snapshot = snapshot.tz_convert("UTC") if snapshot.tzinfo else snapshot.tz_localize("UTC")
        settings = get_settings()
        engine = make_engine(settings)
        self.policy = load_policy()
        self.frame, self.truth = _case_frame(
            settings, engine, self.policy, ChampionScorer.champions(settings), truth, snapshot
        )
        engine.dispose()
        self.data: Any = None
        self.fits: dict[str, Any] = {}
        self.mu = np.empty(0)
        if history:  # the logged decisions and propensities (only to fit here)
            self._history(settings, snapshot)

    def _history(self, settings: Any, snapshot: Any) -> None:
        from training.effects import logging_propensities
        from training.effects_data import logged_decisions

        cache = self.base / "decisions.pkl"  # shared with effects_diagnosis
        if cache.exists():
            self.data = pickle.loads(cache.read_bytes())
        else:
            self.data = logged_decisions(settings, snapshot.to_pydatetime())
            cache.write_bytes(pickle.dumps(self.data))
        self.propensity = self._propensity(settings)
        self.mu, _ = logging_propensities(self.propensity, self.data)

    def _propensity(self, settings: Any) -> Any:
        from models.effects import LoggingPropensity
        from training import registry

        registry.configure(settings)
        try:
            return registry.load_version("action_effects", "1").propensity_
        except Exception:  # noqa: BLE001 - a world prepared without training the action-effect model
            saved = self.base / "propensity.pkl"
            if saved.exists():
                return pickle.loads(saved.read_bytes())
            model = LoggingPropensity().fit(self.data.values, self.data.actions, self.data.features)
            saved.write_bytes(pickle.dumps(model))
            return model

    def fit(
        self, seed: int, fraction: float = 1.0, reuse: bool = False, source: Path | None = None
    ) -> tuple[Any, float]:
        """The default surrogate fitted with LightGBM seed ``seed`` on every decision of a random
        ``fraction`` of the history's cases (drawn with ``seed``); seconds (0 when reused). With
        ``source`` (another world's folder), that world's fit, pickled by an earlier run: judged on
        this world's cases (other debtors of the same population; the same snapshot date)."""
        from training.effects import METHODS, fit_model

        name = f"variance_fit_f{fraction}_seed{seed}.pkl"
        if name in self.fits:  # fitted earlier in this run
            return self.fits[name], 0.0
        if source is not None:
            return pickle.loads((source / name).read_bytes()), 0.0
        saved = self.base / name
        if reuse and saved.exists():
            return pickle.loads(saved.read_bytes()), 0.0
        started = time.perf_counter()
        rows = np.arange(len(self.data))
        if fraction < 1:
            cases = self.data.meta["case_pk"].to_numpy()
            order = np.random.default_rng(1000 + seed).permutation(np.unique(cases))
            rows = np.flatnonzero(np.isin(cases, order[: int(len(order) * fraction)]))
        model = fit_model(
            {**METHODS["surrogate"], "members": 0, "random_state": seed},
            self.data.rows(rows),
            self.mu[rows],
            self.propensity,
        )
        saved.write_bytes(pickle.dumps(model))
        self.fits[name] = model
        return model, time.perf_counter() - started

    def parts(self, model: Any) -> dict[str, dict[str, np.ndarray]]:
        from policies.learned_value import LearnedValue

        return per_case(self.frame, self.truth, self.policy, LearnedValue(model, self.policy.effects, "variance"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("world")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fractions", default="", help="learning curve: fractions of the cases (besides 1)")
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--ceiling-folds", default="", help="observable ceiling with these fold counts")
    parser.add_argument("--reuse", action="store_true", help="load the fits an earlier run pickled")
    parser.add_argument("--registered", default="", help="also judge this registered action_effects version")
    parser.add_argument("--fits-from", default="", help="judge the fits another world's run pickled (its folder)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    source = Path(args.fits_from) if args.fits_from else None
    world = World(args.world, history=source is None and bool(args.seeds.strip(",") or args.fractions))
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out: dict[str, Any] = {
        "world": args.world,
        "cases": int(world.truth["i"].nunique()),
        "truth_rows": len(world.truth),
        "decisions": 0 if world.data is None else len(world.data),
        "seeds": seeds,
    }
    started = time.perf_counter()

    def note(label: str, value: Any) -> None:
        out[label] = value
        print(label, json.dumps(value), f"{time.perf_counter() - started:.0f} s", os.getloadavg(), flush=True)

    if args.registered:  # the model bench_effects trained (pickled, so that another world can judge it)
        saved = (source or world.base) / f"variance_registered_v{args.registered}.pkl"
        if source is None:
            from training import registry

            saved.write_bytes(pickle.dumps(registry.load_version("action_effects", args.registered)))
        parts = world.parts(pickle.loads(saved.read_bytes()))
        note(
            f"registered_v{args.registered}",
            {
                f"{name}_{scope}": bootstrap(p, args.boot)
                for name, scopes in parts.items()
                for scope, p in scopes.items()
            },
        )
    if args.ceiling_folds:
        from policies.facts import Facts
        from policies.learned_value import LearnedValue

        first = (
            pickle.loads(((source or world.base) / f"variance_registered_v{args.registered}.pkl").read_bytes())
            if args.registered
            else world.fit(seeds[0], reuse=True, source=source)[0]
        )
        x = LearnedValue(first, world.policy.effects).inputs(Facts.from_frame(world.frame.copy()))
        n_actions = len(world.policy.catalogue.names)
        for folds in (int(f) for f in args.ceiling_folds.split(",")):
            p = truth_fit(x, world.truth, n_actions, folds=folds)
            parts = per_case(world.frame, world.truth, world.policy, MatrixValue(p, world.policy.effects))
            note(
                f"ceiling_folds{folds}",
                {
                    f"{name}_{scope}": bootstrap(p_, args.boot)
                    for name, scopes in parts.items()
                    for scope, p_ in scopes.items()
                },
            )
    fits: list[Any] = []
    rows: list[dict[str, float]] = []
    first_parts = None
    for seed in seeds:
        model, seconds = world.fit(seed, reuse=args.reuse, source=source)
        parts = world.parts(model)
        fits.append(model)
        rows.append(shares_of(parts))
        note(f"seed{seed}", {**rows[-1], "fit_seconds": round(seconds, 1)})
        if first_parts is None:
            first_parts = parts
            note(
                "evaluation",
                {
                    f"{name}_{scope}": bootstrap(p, args.boot)
                    for name, scopes in parts.items()
                    for scope, p in scopes.items()
                },
            )
        else:
            note(
                f"paired_seed{seed}_minus_seed{seeds[0]}",
                {
                    f"{name}_{scope}": bootstrap(p, args.boot, other=first_parts[name][scope])
                    for name, scopes in parts.items()
                    for scope, p in scopes.items()
                },
            )
    if len(fits) > 1:
        note("seed_spread", summary(rows))
        note("averaged", shares_of(world.parts(Averaged(fits))))
    for fraction in (float(f) for f in args.fractions.split(",") if f):
        curve = []
        for seed in seeds:
            model, seconds = world.fit(seed, fraction, reuse=args.reuse, source=source)
            curve.append(shares_of(world.parts(model)))
            note(f"curve_{fraction}_seed{seed}", {**curve[-1], "fit_seconds": round(seconds, 1)})
        note(f"curve_{fraction}", summary(curve))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
