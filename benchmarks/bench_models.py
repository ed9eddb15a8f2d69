"""Model quality against the oracle, and training cost at a million rows.

1. A simulated world of 50,000 cases goes through import, the feature build and training, as
   any creditor's files would. On the simulator's own decision points after the out-of-time
   cut (never seen in training) the champion's ROC-AUC is compared with the AUC of the true
   probabilities (the oracle): share of the way from chance = (AUC - 0.5) / (AUC_oracle - 0.5).
   Targets: AUC >= 0.80, share >= 0.9, expected calibration error <= 0.02. The whole of it
   (world, import, build, both point-in-time training sets, training, evaluation) runs in its
   own process: its peak memory is that of the 50,000-case world end to end.
2. Training time and peak memory of the model class on 1,000,000 rows with as many features
   as the reachability service (target: under 5 minutes), in its own process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import peak_rss_mib, run_child  # noqa: E402


def oracle_comparison(n_cases: int = 50_000, seed: int = 7) -> dict:
    """Figures per model: model AUC, oracle AUC, share of the way, ECE, baseline AUC."""
    import pandas as pd

    from concord.db import make_engine
    from concord.settings import Settings
    from features.offline.build import build_offline_tables
    from features.store.config import apply
    from features.store.retrieval import historical_features
    from ingestion.importer import import_file
    from models.metrics import scores
    from models.specs import SPECS
    from simulator.world import simulate_world
    from simulator.writers import write_world
    from training import labels as label_defs
    from training.pipeline import train

    out: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        settings = Settings.from_env({"CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "benchmark"})
        started = time.perf_counter()
        world = simulate_world(n_cases, seed)
        paths = write_world(world, home / "world", "csv")
        engine = make_engine(settings)
        for table in ("mediators", "cases", "contact_checks", "capacity", "litigation", "events"):
            import_file(table, paths[table], settings, engine, received_at=None)
        build_offline_tables(settings)
        apply(settings)
        out["prepare_seconds"] = round(time.perf_counter() - started, 1)
        as_of = dt.datetime(2026, 6, 30, tzinfo=dt.UTC)
        cases, events = label_defs.load_history(engine)
        truth = world.truth_decisions.copy()
        truth["creditor"] = truth["creditor"].astype(str)
        truth["case_id"] = truth["case_id"].astype(str)
        truth["decision_ts"] = pd.to_datetime(truth["decision_time"], utc=True).dt.floor("s")
        truth = label_defs.with_feature_cut(truth.merge(cases, on=["creditor", "case_id"], how="inner"))
        for name, oracle_column in (("reachability", "p_reach_14d"), ("settlement", "p_settle_90d")):
            started = time.perf_counter()
            result, _version = train(settings, engine, name, as_of)
            label = label_defs.LABELS[SPECS[name].label]
            points = truth[(truth["decision_ts"] >= result.cut) & (truth["decision_ts"] + label.horizon <= as_of)]
            points = points.reset_index(drop=True)
            points["label"] = label_defs.attach_labels(points, events, label)
            entity_rows = points[["case_pk", "debtor_key", "event_timestamp", "decision_ts"]]
            features = historical_features(settings, entity_rows, SPECS[name].feature_service)
            frame = points[["case_pk", "event_timestamp", "label", oracle_column, "creditor_type"]].merge(
                features.drop(columns=[c for c in ("debtor_key", "decision_ts", "creditor_type") if c in features]),
                on=["case_pk", "event_timestamp"], how="left")
            p_model = result.model.predict_proba(frame[result.features].astype(float))[:, 1]
            p_baseline = result.baseline.predict_proba(frame[result.features].astype(float))[:, 1]
            model, oracle = scores(frame["label"], p_model), scores(frame["label"], frame[oracle_column])
            figures = {
                "holdout_points": int(len(frame)), "base_rate": round(model["base_rate"], 4),
                "roc_auc": round(model["roc_auc"], 4), "oracle_roc_auc": round(oracle["roc_auc"], 4),
                "share_of_oracle": round((model["roc_auc"] - 0.5) / (oracle["roc_auc"] - 0.5), 3),
                "ece": round(model["ece"], 4), "brier": round(model["brier"], 4),
                "baseline_roc_auc": round(scores(frame["label"], p_baseline)["roc_auc"], 4),
                "train_seconds": round(time.perf_counter() - started, 1),
            }
            for kind in ("bank", "consumer_finance"):
                mask = (frame["creditor_type"] == kind).to_numpy()
                figures[f"roc_auc_{kind}"] = round(scores(frame["label"][mask], p_model[mask])["roc_auc"], 4)
                oracle_auc = scores(frame["label"][mask], frame[oracle_column][mask])["roc_auc"]
                figures[f"oracle_roc_auc_{kind}"] = round(oracle_auc, 4)
            out[name] = figures
        engine.dispose()
    return out


def _train_million(rows: int, features: int) -> dict:
    from models.odds import CalibratedOdds

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    logit = X[:, :8] @ rng.normal(size=8) + 0.5 * np.sin(X[:, 8] * 2) - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    started = time.perf_counter()
    CalibratedOdds(n_jobs=2).fit(frame, y)
    seconds = time.perf_counter() - started
    return {"rows": rows, "features": features, "seconds": round(seconds, 1), "peak_rss_mib": peak_rss_mib()}


def _world(n_cases: int) -> dict:
    figures = oracle_comparison(n_cases)
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def run(n_cases: int = 50_000, rows: int = 1_000_000, features: int = 60) -> dict:
    """Both measurements, each in its own process for an honest peak memory."""
    results = {"train_1000000": run_child(__file__, "million", str(rows), str(features))}
    world = run_child(__file__, "world", str(n_cases))
    for name in ("reachability", "settlement"):
        results[f"oracle_{name}"] = world.pop(name)
    results[f"world_{n_cases}"] = world  # prepare_seconds, wall_s, peak memory
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs="+", metavar="ARG", help="internal: million ROWS FEATURES | world CASES")
    parser.add_argument("--cases", type=int, default=50_000)
    args = parser.parse_args()
    if args.child and args.child[0] == "million":
        print(json.dumps(_train_million(int(args.child[1]), int(args.child[2]))))
    elif args.child and args.child[0] == "world":
        print(json.dumps(_world(int(args.child[1])), default=str))
    else:
        print(json.dumps(run(args.cases), indent=2, default=str))
