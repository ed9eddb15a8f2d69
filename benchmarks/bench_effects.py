"""Action-effect figures: how good the learned policy is where the truth is known, whether off-policy
estimates cover the truth, and batch recommendations with the learned model.

1. Per world (Concord's simulator; the two worlds of ``tests/foreign_actions.py``, written without
   the simulator): simulate, import, build features,
   train the odds models and the action-effect model with concord's own commands, all as of the
   snapshot whose truth is known (``truth_actions``: P(settled within 90 days) for every case open
   then and every action the world can take, the logging policy after it). Then
   - the share of the way from a random choice to the per-case best action (true value: that
     probability x the recoverable claim - the action's cost) of the learned policy, the
     prior-based one and the best constant action, per shipped workflow. The engine ranks the
     world's actions its policy allows by its own values (all the world's actions where it allows
     none), as ``bench_policy`` does; ``*_allowed`` measures random and best within the allowed
     ones only;
   - the ceilings of those shares (``ceilings``, flat ``ceiling_*``): an oracle that knows every
     true value and picks the best action the engine allows, and the true values regressed on the
     features the effect model sees (cross-fitted by case): the most a learner on those features
     can reach;
   - ``concord evaluate-policy`` at the snapshot: each policy's IPS, SNIPS and DR (settlement rate
     and net value per case) with 95 % intervals, beside its true value on the same decisions
     (sum over actions of the policy's probability x the truth), and whether the truth is inside;
   - both again on the same history without its propensities (``no_propensity``: the ledger's
     ``events.propensity`` emptied, the action-effect model trained again, so that every
     propensity, in training and in the off-policy estimates, comes from the estimated propensity
     model; the column is restored afterwards). Flat keys ``*_no_propensity``.
2. ``recommend --all`` over 1,000,000 cases with the learned model (the simulator world's,
   pickled by part 1, or one fitted on synthetic decisions): bench_policy's synthetic facts and
   nine million events; history facts, decisions (the model predicts every eligible action of
   every case) and the answer table, timed; peak memory.

    python benchmarks/bench_effects.py --only world simulator
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_policy import TABLES, WORLD_END, _cli, synthetic_cases, time_recommendations  # noqa: E402
from benchmarks.common import peak_rss_mib, run_child  # noqa: E402

MODEL_FILE = ROOT / "benchmarks" / "out" / "effects_model.pkl"
WORLDS = {"simulator": (20_000, 11), "foreign": (6000, 7), "different": (6000, 7)}


def _prepare(world: str, n_cases: int, seed: int, folder: Path, env: dict) -> dict:
    """Write the world; returns table -> path (truth_actions, truth_snapshot included)."""
    if world == "simulator":
        _cli(env, "simulate", "--cases", str(n_cases), "--seed", str(seed), "--out", str(folder), "--format", "parquet")
        return {name: folder / f"{name}.parquet" for name in (*TABLES, "truth_actions", "truth_snapshot")}
    from tests.foreign_actions import build

    return build(folder, world, n_cases, seed)


def _read(path: Path):  # noqa: ANN202
    import pandas as pd

    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def _world(world: str) -> dict:
    """One world's figures. With ``CONCORD_BENCH_KEEP`` (a folder), the world, its store and its
    odds models are kept there and reused by the next run of the same world: only the
    action-effect model is trained again (for iterating on it)."""
    import pandas as pd

    n_cases, seed = WORLDS[world]
    keep = os.environ.get("CONCORD_BENCH_KEEP")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(keep) / world if keep else Path(scratch)
        folder, home = base / "world", base / "home"
        env = {**os.environ, "CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "benchmark", "PYTHONPATH": str(ROOT)}
        env.pop("CONCORD_DATABASE_URL", None)
        started = time.perf_counter()
        ready = base / "prepared.json"
        if ready.exists():
            paths = {k: Path(v) for k, v in json.loads(ready.read_text(encoding="utf-8")).items()}
        else:
            paths = _prepare(world, n_cases, seed, folder, env)
        truth = _read(paths["truth_actions"])
        snapshot = pd.Timestamp(truth["snapshot"].iloc[0])
        snapshot = snapshot.tz_convert("UTC") if snapshot.tzinfo else snapshot.tz_localize("UTC")
        if not ready.exists():
            for table in TABLES:
                _cli(env, "import", table, str(paths[table]), "--historical")
            _cli(env, "features", "build", "--as-of", WORLD_END if world.startswith("simulator") else "2025-07-01")
            _cli(env, "features", "apply")
            _cli(env, "train", "--model", "all", "--as-of", snapshot.isoformat())
            if keep:
                ready.write_text(json.dumps({k: str(v) for k, v in paths.items()}), encoding="utf-8")
        prepared = time.perf_counter() - started
        _cli(env, "train", "--model", "action_effects", "--as-of", snapshot.isoformat())
        trained = time.perf_counter() - started - prepared
        os.environ.update({"CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "benchmark"})
        figures = {
            "cases": n_cases,
            "prepare_seconds": round(prepared, 1),
            "train_effects_seconds": round(trained, 1),
            **_judge(world, truth, snapshot),
        }
        with _without_propensities():
            _cli(env, "train", "--model", "action_effects", "--as-of", snapshot.isoformat())
            blind = _judge(world, truth, snapshot, keep_model=False)
        figures["no_propensity"] = blind
        figures.update(
            {
                f"{key}_no_propensity": value
                for key, value in blind.items()
                if key.startswith(("share_", "ope_intervals_"))
            }
        )
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


@contextlib.contextmanager
def _without_propensities() -> Iterator[None]:
    """The ledger's ``events.propensity`` emptied for the block, then restored (a kept world is
    left as it was found). A copy left by a run killed inside the block is restored first."""
    from sqlalchemy import inspect, text

    from concord.db import make_engine
    from concord.settings import get_settings

    engine = make_engine(get_settings())
    restore = text(
        "UPDATE events SET propensity = (SELECT s.propensity FROM bench_saved_propensity s WHERE s.id = events.id)"
    )
    if inspect(engine).has_table("bench_saved_propensity"):
        with engine.begin() as connection:
            connection.execute(restore)
            connection.execute(text("DROP TABLE bench_saved_propensity"))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE TABLE bench_saved_propensity AS SELECT id, propensity FROM events "
                    "WHERE propensity IS NOT NULL"
                )
            )
            # The restore looks each event up by id: without an index SQLite scans the copy once per
            # event (a simulator world's restore ran for over an hour).
            connection.execute(text("CREATE UNIQUE INDEX bench_saved_propensity_id ON bench_saved_propensity (id)"))
            connection.execute(text("UPDATE events SET propensity = NULL"))
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(restore)
            connection.execute(text("DROP TABLE bench_saved_propensity"))
        engine.dispose()


def _judge(world: str, truth, snapshot, keep_model: bool = True) -> dict:  # noqa: ANN001
    """Shares of the way to the best action and off-policy estimates against the truth (the
    simulator world's model pickled for the recommendation timing unless ``keep_model`` is false)."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from policies.config import load_policy
    from policies.learned_value import LearnedValue
    from policies.scores import ChampionScorer
    from training import registry

    settings = get_settings()
    engine = make_engine(settings)
    policy, scorer = load_policy(), ChampionScorer.champions(settings)
    # The model this run trained: the champion on a new world, the challenger on a kept one.
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
    learned = LearnedValue(
        registry.load_version("action_effects", str(newest.version)), policy.effects, str(newest.version)
    )
    if world == "simulator" and keep_model:
        MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
        MODEL_FILE.write_bytes(pickle.dumps(learned.model))
    out: dict = {
        "model_version": learned.version,
        "method": learned.model.method,
        "estimated_actions": list(learned.model.supported_),
        "left_to_prior": {k: v for k, v in learned.model.fallback_.items() if v},
    }
    frame, rows = _case_frame(settings, engine, policy, scorer, truth, snapshot)
    out["shares"] = shares_on(frame, rows, policy, learned)
    out["ceilings"] = ceilings(frame, rows, policy, learned)
    out["ope"] = _ope(settings, engine, policy, scorer, learned, truth, snapshot)
    engine.dispose()
    for name in policy.workflows:  # the headline figures, flat, for run.py's targets
        for key in ("share_learned", "share_prior", "share_best_constant", "share_learned_allowed"):
            out[f"{key}_{name}"] = out["shares"][name][key]
        for key, value in out["ceilings"][name].items():
            out[f"ceiling_{key}_{name}"] = value
    covers = [
        v
        for entry in out["ope"].values()
        if isinstance(entry, dict)
        for k, v in entry.items()
        if k.endswith("_covers_truth")
    ]
    out["ope_intervals_covering_truth"] = f"{sum(covers)} of {len(covers)}"
    out["ope_intervals_missing_truth"] = len(covers) - sum(covers)
    return out


class MatrixValue:
    """An ``ActionValue`` of fixed settlement odds (cases x catalogue actions; NaN: never chosen
    before an action with a value), the prior's recovery and costs."""

    name = "matrix"
    version = "ceiling"

    def __init__(self, p: np.ndarray, effects) -> None:  # noqa: ANN001
        from policies.action_value import PriorValue

        self.p = p
        self.prior = PriorValue(effects)

    def estimate(self, facts, catalogue, wanted=None):  # noqa: ANN001, ANN201
        from policies.action_value import ActionEstimates

        prior = self.prior.estimate(facts, catalogue)
        p = np.where(np.isfinite(self.p), self.p, -1.0)
        return ActionEstimates(catalogue.names, p, prior.recovery, prior.cost, ("matrix",) * len(catalogue.names))


def truth_fit(x: np.ndarray, truth, n_actions: int, folds: int = 5, seed: int = 0) -> np.ndarray:  # noqa: ANN001
    """(cases, actions) the true P(settled) (``truth`` rows with case row ``i`` and action column
    ``j``) regressed on the case features ``x`` and the action (LightGBM, the action categorical),
    cross-fitted: each case predicted by a model fitted on the other folds' cases."""
    import lightgbm as lgb

    i, j = truth["i"].to_numpy(), truth["j"].to_numpy()
    y = truth["p_settle_90d"].to_numpy(dtype=np.float64)
    data = np.column_stack([x[i], j.astype(np.float32)])
    fold = np.random.default_rng(seed).integers(0, folds, len(x))[i]
    out = np.full((len(x), n_actions), np.nan)
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "verbosity": -1,
        "num_threads": 1,
        "seed": seed,
    }
    for k in range(folds):
        fit, test = fold != k, fold == k
        if not fit.any() or not test.any():
            continue
        model = lgb.train(
            params, lgb.Dataset(data[fit], y[fit], categorical_feature=[data.shape[1] - 1]), num_boost_round=300
        )
        out[i[test], j[test]] = model.predict(data[test])
    return out


def ceilings(frame, truth, policy, learned) -> dict:  # noqa: ANN001
    """Per workflow, the most the headline shares can reach: ``oracle`` (``share_learned`` of a policy
    that knows every true value and picks the best among the actions the engine allows; its
    ``_allowed`` is 1 by construction) and ``observable`` (the true odds regressed on the features
    the effect model sees, cross-fitted by case (``truth_fit``), then ranked by the engine: the most
    a learner on these features reaches, with no noise in its label), and the share of cases where
    the engine allows none of the world's actions (``share_learned`` still credits the value
    ranking's first action there, though the engine waits; the learned model is not asked for
    those actions, so its pick there follows the prior)."""
    import pandas as pd

    from policies.engine import PolicyEngine
    from policies.facts import Facts

    n_actions = len(policy.catalogue.names)
    oracle = np.full((len(frame), n_actions), np.nan)
    oracle[truth["i"].to_numpy(), truth["j"].to_numpy()] = truth["p_settle_90d"].to_numpy()
    x = learned.inputs(Facts.from_frame(frame.copy()))
    out: dict = {name: {} for name in policy.workflows}
    for label, p in (("oracle", oracle), ("observable", truth_fit(x, truth, n_actions))):
        shares = shares_on(frame, truth, policy, MatrixValue(p, policy.effects))
        for name in policy.workflows:
            out[name][label] = shares[name]["share_learned"]
            if label != "oracle":
                out[name][f"{label}_allowed"] = shares[name]["share_learned_allowed"]
    i, j = truth["i"].to_numpy(), truth["j"].to_numpy()
    for name in policy.workflows:  # where the engine allows none of the world's actions, it waits
        decisions = PolicyEngine(policy.with_workflow(name), MatrixValue(oracle, policy.effects)).decide(
            Facts.from_frame(frame.copy())
        )
        allowed = pd.Series(decisions.eligible[i, j] & (decisions.blocked_by[i, j] == 0)).groupby(i).any()
        out[name]["cases_without_allowed_action"] = round(float(1 - allowed.mean()), 3)
    return out


def _case_frame(settings, engine, policy, scorer, truth, snapshot):  # noqa: ANN001, ANN202
    """The facts of every case with a truth at the snapshot, and the truth rows with their case row
    ``i`` and catalogue column ``j``."""
    import pandas as pd

    from policies.cases import case_inputs, case_rows

    keys = case_rows(engine)[["case_pk", "case_id", "creditor"]]
    truth = truth.merge(keys, on=["case_id", "creditor"], how="inner")
    truth = truth[truth["action"].isin(policy.catalogue.names)]
    pks = sorted(int(pk) for pk in truth["case_pk"].unique())
    frame = case_inputs(settings, engine, snapshot.to_pydatetime(), policy.catalogue, scorer, case_pks=pks).frame
    frame["decision_ts"] = snapshot + pd.Timedelta(hours=10)  # the world's steps happen in the daytime
    row_of = pd.Series(np.arange(len(frame)), index=frame["case_pk"].to_numpy())
    truth = truth.assign(
        i=row_of.loc[truth["case_pk"]].to_numpy(), j=[policy.catalogue.index(a) for a in truth["action"].astype(str)]
    )
    return frame, truth


def shares_on(frame, truth, policy, learned) -> dict:  # noqa: ANN001
    """The shares of the way to the per-case best action, per workflow (see the module doc)."""
    from policies.action_value import PriorValue
    from policies.engine import PolicyEngine
    from policies.facts import Facts

    i, j = truth["i"].to_numpy(), truth["j"].to_numpy()
    out: dict = {"cases": int(truth["i"].nunique()), "truth_rows": len(truth)}
    for name in policy.workflows:
        row: dict = {}
        for label, value in (("learned", learned), ("prior", PriorValue(policy.effects))):
            decisions = PolicyEngine(policy.with_workflow(name), value).decide(Facts.from_frame(frame.copy()))
            rows = truth.assign(
                true_value=truth["p_settle_90d"].to_numpy() * decisions.claims.outstanding[i]
                - policy.catalogue.costs()[j],
                ours=decisions.estimates.value[i, j],
                allowed=decisions.eligible[i, j] & (decisions.blocked_by[i, j] == 0),
            )
            picked = (
                rows.sort_values(["i", "allowed", "ours", "j"], ascending=[True, False, False, True], kind="stable")
                .groupby("i")
                .head(1)
            )
            for scope, pool in (("", rows), ("_allowed", rows[rows["allowed"]])):
                per_case = pool.groupby("i")["true_value"]
                chosen = picked[picked["i"].isin(per_case.mean().index)]
                random, best = per_case.mean(), per_case.max()
                gap = float(best.sum() - random.sum())
                row[f"share_{label}{scope}"] = round((float(chosen["true_value"].sum()) - float(random.sum())) / gap, 3)
                if label == "prior":
                    constant = {}
                    for action, group in pool.groupby("action", observed=True):
                        value_c = random.copy()
                        value_c.loc[group["i"].to_numpy()] = group["true_value"].to_numpy()
                        constant[str(action)] = (float(value_c.sum()) - float(random.sum())) / gap
                    top = max(constant, key=lambda a: constant[a])
                    row[f"share_best_constant{scope}"] = round(constant[top], 3)
                    row[f"best_constant{scope}"] = top
            row[f"recommended_{label}"] = {str(k): int(v) for k, v in picked["action"].value_counts().head(5).items()}
        out[name] = row
    return out


def _ope(settings, engine, policy, scorer, learned, truth, snapshot) -> dict:  # noqa: ANN001

    from policies.evaluation import evaluate_policies

    evaluation = evaluate_policies(settings, engine, policy, scorer, learned, snapshot.to_pydatetime())
    cases = evaluation.cases.reset_index(drop=True)
    names = evaluation.actions
    true_p = np.full((len(cases), len(names)), np.nan)
    index = {(c, cr): r for r, (c, cr) in enumerate(zip(cases["case_id"], cases["creditor"], strict=True))}
    for row in truth.itertuples(index=False):
        r = index.get((row.case_id, row.creditor))
        if r is not None and row.action in names:
            true_p[r, names.index(row.action)] = row.p_settle_90d
    logging_truth = np.nansum(
        np.nan_to_num(np.where(np.isnan(true_p), 0, true_p)) * _logging_probabilities(truth, cases, names), axis=1
    )
    cost = policy.catalogue.costs()
    claim = cases["claim"].to_numpy()
    out: dict = {"decisions": len(cases), "as_of": str(evaluation.as_of), "notes": evaluation.notes}
    table = evaluation.table
    for name, pi in evaluation.policies.items():
        missing = np.isnan(true_p) & (pi > 0)
        filled = np.where(np.isnan(true_p), logging_truth[:, None], true_p)
        if name == "logging":  # the world's own logging probabilities, not the estimated ones
            pi = _logging_probabilities(truth, cases, names)
        truth_settle = float((pi * filled).sum(axis=1).mean())
        truth_value = float((pi * (filled * claim[:, None] - cost[None, :])).sum(axis=1).mean())
        entry: dict = {
            "truth_settlement_rate": round(truth_settle, 5),
            "truth_net_value_cny": round(truth_value, 2),
            "mass_without_truth": round(float((pi * missing).sum() / len(pi)), 4),
        }
        for measure, true_value in (("settlement_rate", truth_settle), ("net_value_cny", truth_value)):
            part = table[(table["policy"] == name) & (table["measure"] == measure)]
            for est in part.itertuples(index=False):
                digits = 5 if measure == "settlement_rate" else 2
                entry[f"{measure}_{est.estimator}"] = [
                    round(est.value, digits),
                    round(est.low, digits),
                    round(est.high, digits),
                ]
                entry[f"{measure}_{est.estimator}_covers_truth"] = bool(est.low <= true_value <= est.high)
            entry["ess"] = round(float(part["ess"].iloc[0]), 1)
        out[name] = entry
    return out


def _logging_probabilities(truth, cases, names):  # noqa: ANN001, ANN202
    probabilities = np.zeros((len(cases), len(names)))
    index = {(c, cr): r for r, (c, cr) in enumerate(zip(cases["case_id"], cases["creditor"], strict=True))}
    for row in truth.itertuples(index=False):
        r = index.get((row.case_id, row.creditor))
        if r is not None and row.action in names:
            probabilities[r, names.index(row.action)] = row.logging_probability
    return probabilities


def _recommend(n: int) -> dict:
    from policies.config import load_policy
    from policies.learned_value import LearnedValue

    policy = load_policy()
    if MODEL_FILE.exists():
        model, source = pickle.loads(MODEL_FILE.read_bytes()), "the simulator world's trained model"
    else:
        model, source = _synthetic_model(), "a model fitted on synthetic decisions"
    _, _, _, decisions, figures = time_recommendations(n, LearnedValue(model, policy.effects, "benchmark"))
    learned = [a for a, s in zip(policy.catalogue.names, decisions.estimates.source, strict=True) if s != "prior"]
    return {
        **figures,
        "model": source,
        "method": model.method,
        "trees": model.trees_,
        "learned_actions": learned,
        "peak_rss_mib": peak_rss_mib(),
    }


def _synthetic_model():  # noqa: ANN202
    from models.effects import ActionEffects
    from policies.config import load_policy
    from training.effects_data import EFFECT_SPEC  # noqa: F401 - the model reads the settlement features

    cases = synthetic_cases(100_000, seed=3)
    names = ["voice_call", "mediator_call", "installment_offer", "lawyer_letter", "sms_warning"]
    rng = np.random.default_rng(0)
    action = rng.choice(names, len(cases))
    features = [c for c in cases.columns if cases[c].dtype.kind == "f"]
    x = cases[features].to_numpy(np.float32)
    p = 0.05 + 0.1 * (action == "installment_offer") * (cases["monthly_income"].fillna(0).to_numpy() < 5000)
    y = rng.random(len(cases)) < p
    del load_policy
    return ActionEffects().fit(x, action, y, np.full(len(cases), 0.2), features)


def run() -> dict:
    """Every world, then the 1,000,000-case recommendation, each in its own process."""
    results = {f"effects_{world}": run_child(__file__, "world", world) for world in WORLDS}
    results["recommend_learned_1000000"] = run_child(__file__, "recommend", "1000000")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs="+", metavar="ARG", help="internal: world NAME | recommend N")
    parser.add_argument("--only", nargs="+", metavar="ARG", help="world NAME | recommend N: one part, here")
    args = parser.parse_args()
    if args.child:
        kind, value = args.child
        print(json.dumps(_world(value) if kind == "world" else _recommend(int(value)), default=str))
    elif args.only:
        print(json.dumps(run_child(__file__, *args.only), indent=2, default=str))
    else:
        print(json.dumps(run(), indent=2, default=str))
