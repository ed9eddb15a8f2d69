"""Policy-engine figures: batch recommendations, assignment, and how good the recommended actions are.

1. Recommendations for 1,000,000 cases in batch (target under 60 s): synthetic case facts as the
   feature store and the scorer hand them over, and about nine million synthetic events; timed:
   the contact-history facts from the events, the engine's decisions, the answer table.
2. Assignment of 100,000 cases to 500 mediators (target under 10 s): min-cost flow with the
   shipped fit rules.
3. On a simulated world (``concord simulate``, imported, featurised and trained with concord's
   own commands, models trained on what was known at the snapshot): the recommended actions'
   share of the way from a random choice to the per-case best action, beside the best constant
   action's share, per shipped workflow. The truth is the simulator's ``truth_actions`` (for
   every case open at the snapshot and every action the world can take: P(settled within 90 days)
   if taken now); an action's true value is that probability x the case's recoverable claim minus
   the catalogue's cost. The engine ranks the world's actions that its policy allows (all of the
   world's actions, by its own values, where it allows none). Said plainly when the table is
   missing; the same for the foreign world of ``tests/foreign_world.py``.

Each part runs in its own process; memory is the peak of its process tree.

    python benchmarks/bench_policy.py --only recommend
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import peak_rss_mib, run_child  # noqa: E402

TABLES = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
WORLD_END = "2026-06-30"


def synthetic_cases(n: int, seed: int = 0):  # noqa: ANN201 - pandas imported lazily
    """``n`` cases' facts shaped like the feature store's (stage, contact history, capacity,
    litigation, amounts, ages) with scores; about 3 % of debtors owe two cases."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    pk = np.arange(n)
    stage = rng.choice(np.arange(8), n, p=[0.02, 0.55, 0.25, 0.05, 0.08, 0.02, 0.02, 0.01])
    reached = (stage >= 2) | (rng.random(n) < 0.05)
    attempts = rng.poisson(6, n).astype(float)
    frame = pd.DataFrame(
        {
            "case_pk": pk,
            "case_id": pd.Series(pk).astype(str).radd("C").to_numpy(),
            "creditor": rng.choice(["闽江商业银行信用卡中心", "安信消费金融有限公司", "恒通消费金融有限公司"], n),
            "debtor_key": pd.Series(np.where(pk % 33 == 1, pk - 1, pk)).astype(str).radd("d").to_numpy(),
            "province": rng.choice(["福建省", "广东省", "北京市", "四川省", "浙江省"], n),
            "product": rng.choice(["credit_card", "personal_loan", "consumer_loan"], n),
            "stage_code": stage.astype(float),
            "in_scope": (rng.random(n) < 0.985).astype(float),
            "has_phone": (rng.random(n) < 0.9).astype(float),
            "last_status_active": (rng.random(n) < 0.7).astype(float),
            "last_phone_failed": (rng.random(n) < 0.2).astype(float),
            "principal": rng.lognormal(9.0, 0.8, n),
            "annual_rate": rng.choice([0.12, 0.18, 0.24, np.nan], n),
            "fees": rng.uniform(0, 600, n),
            "interest": rng.uniform(0, 3000, n),
            "penalty": rng.uniform(0, 1500, n),
            "overdue_since_ts": 1.72e9 - rng.uniform(30, 700, n) * 86_400,
            "paid_amount_total": 0.0,
            "attempts_total": attempts,
            "ever_reached": reached.astype(float),
            "reached_total": reached * 1.0,
            "refused_total": rng.poisson(0.3, n).astype(float),
            "promise_open": (rng.random(n) < 0.1).astype(float),
            "promises_total": rng.poisson(0.3, n).astype(float),
            "disputed_total": rng.poisson(0.05, n).astype(float),
            "days_since_first_event": rng.uniform(0, 180, n),
            "days_since_last_reached": np.where(reached, rng.uniform(0, 90, n), np.nan),
            "days_since_last_settled": np.where(stage == 3, rng.uniform(0, 60, n), np.nan),
            "monthly_income": np.where(rng.random(n) < 0.8, rng.lognormal(8.7, 0.5, n), np.nan),
            "monthly_spend": rng.lognormal(8.0, 0.5, n),
            "other_debt": rng.lognormal(9, 1, n),
            "income_stability": rng.random(n),
            "has_property": (rng.random(n) < 0.3).astype(float),
            "has_vehicle": (rng.random(n) < 0.2).astype(float),
            "terminated_no_assets": (rng.random(n) < 0.04).astype(float),
            "dishonest_listed": 0.0,
            "defendant_cases": rng.poisson(0.4, n).astype(float),
            "claim_to_income": rng.lognormal(0.5, 0.8, n),
            "p_reach": rng.beta(2, 6, n),
            "p_settle": rng.beta(1, 15, n),
            "decision_ts": pd.Timestamp("2024-07-01 02:30", tz="UTC"),
        }
    )
    return frame


def synthetic_events(cases, per_case: float = 9.0, seed: int = 1):  # noqa: ANN201
    """About ``per_case`` events per case in the 60 days before the decision, catalogue actions
    and contract outcomes, the debtor key of their case."""
    import pandas as pd

    from concord.vocabulary import ACTIONS, OUTCOMES

    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_case, len(cases))
    rows = np.repeat(np.arange(len(cases)), counts)
    decision = cases["decision_ts"].iloc[0]
    return pd.DataFrame(
        {
            "case_pk": cases["case_pk"].to_numpy()[rows],
            "debtor_key": cases["debtor_key"].to_numpy()[rows],
            "at": decision - pd.to_timedelta(rng.uniform(0, 60 * 86_400, rows.size).astype(np.int64), unit="s"),
            "action": pd.Categorical.from_codes(rng.integers(0, len(ACTIONS), rows.size), categories=list(ACTIONS)),
            "outcome": pd.Categorical.from_codes(rng.integers(0, len(OUTCOMES), rows.size), categories=list(OUTCOMES)),
        }
    )


def time_recommendations(n: int, action_value=None) -> tuple:  # noqa: ANN001
    """``recommend --all``'s steps over ``n`` synthetic cases (about nine events each), timed:
    history facts, decisions, the answer table. Returns the engine, the cases' facts frame, the
    answer, the decisions and the figures (seconds, top actions). Shared with ``bench_effects``."""
    from policies.answers import batch_frame
    from policies.config import load_policy
    from policies.engine import PolicyEngine
    from policies.facts import Facts
    from policies.history import contact_facts

    cases = synthetic_cases(n)
    events = synthetic_events(cases)
    engine = PolicyEngine(load_policy(), action_value)
    started = time.perf_counter()
    history = contact_facts(cases, events, engine.policy.catalogue)
    frame = cases.join(history)
    del events
    history_s = time.perf_counter() - started
    started = time.perf_counter()
    decisions = engine.decide(Facts.from_frame(frame))
    decide_s = time.perf_counter() - started
    started = time.perf_counter()
    answer = batch_frame(decisions, engine, frame)
    answer_s = time.perf_counter() - started
    top = answer["action"].value_counts().head(5)
    figures = {
        "cases": n,
        "events_per_case": 9,
        "history_seconds": round(history_s, 1),
        "decide_seconds": round(decide_s, 1),
        "answer_seconds": round(answer_s, 1),
        "seconds": round(history_s + decide_s + answer_s, 1),
        "top_actions": {str(k): int(v) for k, v in top.items()},
    }
    return engine, frame, answer, decisions, figures


def _recommend(n: int) -> dict:
    engine, frame, _, _, figures = time_recommendations(n)
    one = _one_case_ms(engine, frame.head(2000))
    return {**figures, **one, "peak_rss_mib": peak_rss_mib()}


def _one_case_ms(engine, frame) -> dict:  # noqa: ANN001
    """The service's path: one case's facts as a mapping, ``recommend_one``; p50 and p99 in ms."""
    rows = frame.to_dict("records")
    for row in rows[:50]:  # warm up
        engine.recommend_one(row)
    times = []
    for row in rows:
        started = time.perf_counter()
        engine.recommend_one(row)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "one_case_p50_ms": round(float(np.percentile(times, 50)), 2),
        "one_case_p99_ms": round(float(np.percentile(times, 99)), 2),
    }


def _assign(n: int, m: int) -> dict:
    import pandas as pd

    from policies.assignment import assign
    from policies.config import load_policy

    rng = np.random.default_rng(5)
    provinces = ["福建省", "广东省", "北京市", "上海市", "浙江省", "江苏省", "四川省", "湖北省", "河南省", "山东省"]
    cases = pd.DataFrame(
        {
            "province": rng.choice(provinces, n),
            "expected_recovery": rng.lognormal(6, 1.2, n),
            "product": rng.choice(["credit_card", "personal_loan", "consumer_loan"], n),
        }
    )
    mediators = pd.DataFrame(
        {
            "mediator_id": [f"M{i:04d}" for i in range(m)],
            "capacity": rng.integers(150, 400, m),
            "load": rng.integers(0, 100, m),
            "languages": rng.choice(["mandarin", "mandarin;minnan", "mandarin;cantonese", "mandarin;wu"], m),
            "products": rng.choice(np.array([None, "credit_card", "personal_loan;consumer_loan"], dtype=object), m),
            "provinces": [
                None if rng.random() < 0.3 else ";".join(rng.choice(provinces, 3, replace=False)) for _ in range(m)
            ],
            "performance": rng.uniform(0.7, 1.3, m),
        }
    )
    started = time.perf_counter()
    result = assign(cases, mediators, load_policy().assignment)
    seconds = time.perf_counter() - started
    assigned = result.mediator_id != ""
    over = (result.limits["assigned"] > result.limits["limit"]).sum()
    return {
        "cases": n,
        "mediators": m,
        "seconds": round(seconds, 2),
        "assigned": int(assigned.sum()),
        "unassigned": int((~assigned).sum()),
        "mediators_over_limit": int(over),
        "expected_recovery_cny": round(float(result.expected_recovery.sum()), 2),
        "peak_rss_mib": peak_rss_mib(),
    }


def _cli(env: dict, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "serving.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"concord {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")


def _value(world: str, n_cases: int, seed: int) -> dict:
    """Share of the way to the per-case best action, on the simulator's world or the foreign one."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as scratch:
        folder, home = Path(scratch) / "world", Path(scratch) / "home"
        env = {**os.environ, "CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "benchmark", "PYTHONPATH": str(ROOT)}
        env.pop("CONCORD_DATABASE_URL", None)
        if world == "simulator":
            _cli(
                env,
                "simulate",
                "--cases",
                str(n_cases),
                "--seed",
                str(seed),
                "--out",
                str(folder),
                "--format",
                "parquet",
            )
            paths = {name: folder / f"{name}.parquet" for name in (*TABLES, "truth_actions")}
        else:
            from tests.foreign_world import build

            paths = build(folder, n_cases=n_cases)
        truth_path = paths.get("truth_actions")
        if truth_path is None or not Path(truth_path).exists():
            return {
                "truth_actions": f"missing: the {world} world on this branch writes no truth_actions table, "
                "so the recommended actions cannot be valued"
            }
        truth = pd.read_parquet(truth_path)
        snapshot = pd.Timestamp(truth["snapshot"].iloc[0])
        started = time.perf_counter()
        for table in TABLES:
            _cli(env, "import", table, str(paths[table]), "--historical")
        _cli(env, "features", "build", "--as-of", WORLD_END)
        _cli(env, "features", "apply")
        _cli(env, "train", "--model", "all", "--as-of", snapshot.isoformat())
        os.environ.update({"CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "benchmark"})
        figures = {"prepare_seconds": round(time.perf_counter() - started, 1), **_shares(truth, snapshot)}
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def _shares(truth, snapshot) -> dict:  # noqa: ANN001
    """Per workflow: the recommended actions' share of the way from random to the per-case best,
    and the best constant action's."""
    import pandas as pd

    from concord.db import make_engine
    from concord.settings import get_settings
    from policies.cases import case_inputs, case_rows
    from policies.config import load_policy
    from policies.engine import PolicyEngine
    from policies.facts import Facts
    from policies.scores import ChampionScorer

    settings = get_settings()
    engine = make_engine(settings)
    policy, scorer = load_policy(), ChampionScorer.champions(settings)
    keys = case_rows(engine)[["case_pk", "case_id", "creditor"]]
    truth = truth.merge(keys, on=["case_id", "creditor"], how="inner")
    pks = sorted(int(pk) for pk in truth["case_pk"].unique())
    inputs = case_inputs(settings, engine, snapshot.to_pydatetime(), policy.catalogue, scorer, case_pks=pks)
    frame = inputs.frame.copy()
    # Decided at 10:00 of the snapshot day (local): the world's next steps happen in the daytime.
    frame["decision_ts"] = snapshot + pd.Timedelta(hours=10)
    row_of = pd.Series(np.arange(len(frame)), index=frame["case_pk"].to_numpy())
    truth = truth.assign(
        i=row_of.loc[truth["case_pk"]].to_numpy(), j=[policy.catalogue.index(a) for a in truth["action"].astype(str)]
    )
    out: dict = {"cases": int(len(pks)), "truth_rows": int(len(truth)), "snapshot": str(snapshot)}
    for name in policy.workflows:
        decisions = PolicyEngine(policy.with_workflow(name)).decide(Facts.from_frame(frame))
        i, j = truth["i"].to_numpy(), truth["j"].to_numpy()
        rows = truth.assign(
            true_value=truth["p_settle_90d"].to_numpy() * decisions.claims.outstanding[i] - policy.catalogue.costs()[j],
            ours=decisions.estimates.value[i, j],
            allowed=decisions.eligible[i, j] & (decisions.blocked_by[i, j] == 0),
        )
        picked = (
            rows.sort_values(["i", "allowed", "ours", "j"], ascending=[True, False, False, True], kind="stable")
            .groupby("i")
            .head(1)
        )
        per_case = rows.groupby("i")["true_value"]
        random, best = per_case.mean(), per_case.max()
        gap = float(best.sum() - random.sum())
        share = (float(picked["true_value"].sum()) - float(random.sum())) / gap if gap > 0 else float("nan")
        constant = {}
        for action, group in rows.groupby("action", observed=True):
            value = random.copy()
            value.loc[group["i"].to_numpy()] = group["true_value"].to_numpy()
            constant[str(action)] = (float(value.sum()) - float(random.sum())) / gap if gap > 0 else float("nan")
        best_constant = max(constant, key=lambda a: constant[a])
        hit = rows["j"].to_numpy() == decisions.chosen[rows["i"].to_numpy()]
        chosen_in_world = pd.Series(hit).groupby(rows["i"].to_numpy()).any()
        out[name] = {
            "share_recommended": round(share, 3),
            "share_best_constant": round(constant[best_constant], 3),
            "best_constant_action": best_constant,
            "allowed_none_of_the_worlds_actions": int((~picked["allowed"]).sum()),
            "engine_choice_is_a_world_action": round(float(chosen_in_world.mean()), 3),
            "recommended": {str(k): int(v) for k, v in picked["action"].value_counts().head(6).items()},
        }
    engine.dispose()
    return out


def run(cases: int = 1_000_000, assign_cases: int = 100_000, mediators: int = 500, world_cases: int = 20_000) -> dict:
    """Every part, each in its own process."""
    results = {
        f"recommend_{cases}": run_child(__file__, "recommend", str(cases)),
        f"assign_{assign_cases}_{mediators}": run_child(__file__, "assign", str(assign_cases), str(mediators)),
        "policy_value_simulator": run_child(__file__, "value", "simulator", str(world_cases), "11"),
        "policy_value_foreign": run_child(__file__, "value", "foreign", "2500", "11"),
    }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs="+", metavar="ARG", help="internal: recommend N | assign N M | value W N S")
    parser.add_argument("--only", choices=("recommend", "assign", "value"), help="run one part here")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "recommend":
            print(json.dumps(_recommend(int(rest[0]))))
        elif kind == "assign":
            print(json.dumps(_assign(int(rest[0]), int(rest[1]))))
        else:
            print(json.dumps(_value(rest[0], int(rest[1]), int(rest[2])), default=str))
    elif args.only == "recommend":
        print(json.dumps(run_child(__file__, "recommend", "1000000"), indent=2))
    elif args.only == "assign":
        print(json.dumps(run_child(__file__, "assign", "100000", "500"), indent=2))
    elif args.only == "value":
        print(json.dumps(run_child(__file__, "value", "simulator", "20000", "11"), indent=2, default=str))
    else:
        print(json.dumps(run(), indent=2, default=str))
