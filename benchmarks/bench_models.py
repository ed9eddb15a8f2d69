"""Model quality against the oracle at a snapshot, on three worlds, and training cost at a million rows.

1. Three worlds go through import (``--historical``), the feature build and ``train --as-of``
   the snapshot, as any creditor's files would. The models then score every case open at the
   snapshot, and are judged against what happened after it: ROC-AUC against the realised
   outcome (reached within 14 days, settled within 90), beside the AUC of the world's true
   probabilities at the snapshot (its oracle). Share of the way from chance =
   (AUC - 0.5) / (AUC_oracle - 0.5); target 0.9 for both models on each world, with the
   rolling-origin spread of the out-of-time ROC-AUC that training reported.

   - ``simulator``: Concord's simulator (50,000 cases); its truth is the ``truth_snapshot``
     table (every case open at the world's end minus 90 days).
   - ``foreign``: the world of ``tests/foreign_world.py``, written by other means (20,000 cases,
     420 days of history, capacity and litigation fetched once when a case enters).
   - ``short``: the same generator with short history (20,000 cases, 240 days before the
     snapshot, capacity and litigation refreshed every 60-120 days; 90-day settlement horizon).

   Nothing is tuned to any of them: the settings are searched by training itself. Each world
   runs in its own process (peak memory is that world end to end).
2. Training time and peak memory of the model class on 1,000,000 rows with as many features
   as the reachability service (target: under 5 minutes), in its own process.
3. On demand, ``concord train --model all`` on a prepared home (a world imported and its
   features built, e.g. by ``bench_features.py``'s stages): wall time and the peak memory of its
   process tree (target 8 GiB at 1,000,000 cases)::

       python benchmarks/bench_models.py --train-home HOME --as-of 2026-06-30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import peak_rss_mib, run_child  # noqa: E402

TABLES = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
ORACLE = {"reachability": "p_reach_14d", "settlement": "p_settle_90d"}
WORLDS = ("simulator", "foreign", "short")


def snapshot_figures(home: Path, paths: dict[str, Path], truth: Any, snapshot: dt.datetime) -> dict[str, Any]:
    """Import the world, train both models up to the snapshot, score the open cases at it and
    compare with the realised outcomes and the truth; figures per model."""
    from concord.db import make_engine
    from concord.settings import Settings
    from features.offline.build import build_offline_tables
    from features.store.config import apply
    from features.store.retrieval import historical_features
    from ingestion.importer import import_file
    from models.metrics import scores
    from models.specs import SPECS
    from training import labels as label_defs
    from training.dataset import ENTITY_COLUMNS
    from training.pipeline import train
    from training.scoring import open_cases

    settings = Settings.from_env({"CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "benchmark"})
    engine = make_engine(settings)
    started = time.perf_counter()
    for table in TABLES:
        import_file(table, paths[table], settings, engine, received_at=None)
    build_offline_tables(settings)
    apply(settings)
    out: dict[str, Any] = {"prepare_seconds": round(time.perf_counter() - started, 1)}
    cases = open_cases(engine, snapshot)
    truth = truth.assign(creditor=truth["creditor"].astype(str), case_id=truth["case_id"].astype(str))
    cases = cases.merge(truth[["case_id", "creditor", *ORACLE.values()]], on=["case_id", "creditor"], how="inner")
    _, events = label_defs.load_history(engine)
    for name, oracle_column in ORACLE.items():
        started = time.perf_counter()
        result, _version = train(settings, engine, name, snapshot)
        label = label_defs.LABELS[SPECS[name].label]
        realised = label_defs.attach_labels(cases, events, label).to_numpy()
        features = historical_features(settings, cases[list(ENTITY_COLUMNS)], SPECS[name].feature_service)
        inputs = features[result.features].astype(float)
        model = scores(realised, result.model.predict_proba(inputs)[:, 1])
        oracle = scores(realised, cases[oracle_column])
        baseline = scores(realised, result.baseline.predict_proba(inputs)[:, 1])
        mean, spread = result.auc("model")
        folds = result.folds[f"auc_{result.chosen}"]
        out[name] = {
            "open_cases": int(len(cases)),
            "base_rate": round(model["base_rate"], 4),
            "roc_auc": round(model["roc_auc"], 4),
            "oracle_roc_auc": round(oracle["roc_auc"], 4),
            "share_of_oracle": round((model["roc_auc"] - 0.5) / (oracle["roc_auc"] - 0.5), 3),
            "baseline_share": round((baseline["roc_auc"] - 0.5) / (oracle["roc_auc"] - 0.5), 3),
            "ece": round(model["ece"], 4),
            "brier": round(model["brier"], 4),
            "registered": result.chosen,
            "out_of_time_auc": round(mean, 4),
            "out_of_time_auc_sd": round(spread, 4),
            "out_of_time_auc_range": [round(float(folds.min()), 4), round(float(folds.max()), 4)],
            "out_of_time_baseline_auc": round(result.auc("baseline")[0], 4),
            "origins": int(len(result.folds)),
            "decisions": result.refit_rows,
            "search_trials": result.tuned.trials,
            "train_seconds": round(time.perf_counter() - started, 1),
        }
    engine.dispose()
    return out


def world_figures(world: str, scratch: Path) -> dict[str, Any]:
    """Write one world into ``scratch`` and measure it (see the module docstring)."""
    import pandas as pd

    if world == "simulator":
        from simulator.world import simulate_world
        from simulator.writers import write_world

        simulated = simulate_world(50_000, 7)
        truth = simulated.truth_snapshot
        paths = write_world(simulated, scratch / "world", "csv")
        snapshot = pd.Timestamp(truth["snapshot"].iloc[0])
    else:
        from tests.foreign_world import build

        options: dict[str, Any] = (
            {"history_days": 420} if world == "foreign" else {"history_days": 240, "refresh_days": (60, 120)}
        )
        paths = build(scratch / "world", n_cases=20_000, seed=5, **options)
        truth = pd.read_csv(paths["truth_snapshot"])
        snapshot = pd.Timestamp(truth["snapshot"].iloc[0])
    snapshot = snapshot.tz_localize("UTC") if snapshot.tzinfo is None else snapshot.tz_convert("UTC")
    figures = snapshot_figures(scratch, paths, truth, snapshot.to_pydatetime())
    figures["snapshot"] = str(snapshot)
    return figures


def _train_million(rows: int, features: int) -> dict:
    import pandas as pd

    from models.odds import CalibratedOdds

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    logit = X[:, :8] @ rng.normal(size=8) + 0.5 * np.sin(X[:, 8] * 2) - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    started = time.perf_counter()
    CalibratedOdds(n_jobs=2).fit(frame, y)
    seconds = time.perf_counter() - started
    return {"rows": rows, "features": features, "seconds": round(seconds, 1), "peak_rss_mib": peak_rss_mib()}


def _train_all(home: str, as_of: str) -> dict:
    """``concord train --model all --as-of`` on ``home``, in this process; each stage it shows
    goes to stderr with the time and this process's memory (the parent samples the tree)."""
    import os

    from rich.status import Status

    os.environ["CONCORD_HOME"] = home
    os.environ.setdefault("CONCORD_PSEUDONYM_KEY", "benchmark")
    from serving.cli.app import app

    started = time.perf_counter()
    shown = Status.update

    def update(self: Status, status: Any = None, **options: Any) -> None:
        if status is not None:
            elapsed = time.perf_counter() - started
            print(
                f"{elapsed:8.0f} s  rss {_rss_mib():6d} MiB (peak {peak_rss_mib():6d})  {status}",
                file=sys.stderr,
                flush=True,
            )
        shown(self, status, **options)

    Status.update = update  # type: ignore[method-assign]
    app(["train", "--model", "all", "--as-of", as_of], standalone_mode=False)
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": peak_rss_mib()}


def _apply(home: str) -> dict:
    """``concord features apply`` on ``home`` (training reads the FeatureServices it registers)."""
    import os

    os.environ["CONCORD_HOME"] = home
    os.environ.setdefault("CONCORD_PSEUDONYM_KEY", "benchmark")
    from serving.cli.app import app

    app(["features", "apply"], standalone_mode=False)
    return {"peak_rss_mib": peak_rss_mib()}


def _rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return 0


def train_at_scale(
    cases: int = 1_000_000, as_of: str = "2026-06-30", scratch: Path | None = None, timeline: Path | None = None
) -> dict:
    """``concord train --model all`` on a simulated world of ``cases`` cases, imported as history and
    its features built (``bench_features.py``'s stages, each in its own process): the training's
    wall time and the peak memory of its process tree (the training-set children included)."""
    features = str(ROOT / "benchmarks" / "bench_features.py")
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        world, home = Path(folder) / "world", Path(folder) / "home"
        prepared = {
            stage: run_child(features, stage, *args)["wall_s"]
            for stage, args in (
                ("simulate", (str(cases), "1", str(world))),
                ("import", (str(home), str(world))),
                ("build", (str(home),)),
            )
        }
        prepared["apply"] = run_child(__file__, "apply", str(home))["wall_s"]
        figures = run_child(__file__, "train", str(home), as_of, timeline=timeline)
    return {f"train_all_{cases}": {**figures, "cases": cases, **{f"{k}_s": v for k, v in prepared.items()}}}


def _world(name: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        figures = world_figures(name, Path(scratch))
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def run(rows: int = 1_000_000, features: int = 60, worlds: tuple[str, ...] = WORLDS) -> dict:
    """Every measurement, each in its own process for an honest peak memory."""
    results = {"train_1000000": run_child(__file__, "million", str(rows), str(features))}
    for world in worlds:
        figures = run_child(__file__, "world", world)
        for name in ORACLE:
            if name in figures:
                results[f"snapshot_{world}_{name}"] = figures.pop(name)
        results[f"world_{world}"] = figures  # prepare_seconds, wall_s, peak memory
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs="+", metavar="ARG", help="internal: million ROWS FEATURES | world NAME")
    parser.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated: " + ", ".join(WORLDS))
    parser.add_argument("--train-home", help="measure `concord train --model all` on this CONCORD_HOME instead")
    parser.add_argument("--as-of", default="2026-06-30", help="with --train-home or --scale large: the data cut-off")
    parser.add_argument(
        "--scale",
        choices=("normal", "large"),
        default="normal",
        help="large: `concord train --model all` on a simulated 1,000,000-case world (over an hour)",
    )
    parser.add_argument(
        "--timeline", type=Path, help="with --train-home or --scale large: the memory every 10 s, to this file"
    )
    args = parser.parse_args()
    if args.train_home:
        print(json.dumps(run_child(__file__, "train", args.train_home, args.as_of, timeline=args.timeline), indent=2))
    elif args.scale == "large":
        print(json.dumps(train_at_scale(as_of=args.as_of, timeline=args.timeline), indent=2))
    elif args.child and args.child[0] == "apply":
        print(json.dumps(_apply(args.child[1])))
    elif args.child and args.child[0] == "train":
        print(json.dumps(_train_all(args.child[1], args.child[2])))
    elif args.child and args.child[0] == "million":
        print(json.dumps(_train_million(int(args.child[1]), int(args.child[2]))))
    elif args.child and args.child[0] == "world":
        print(json.dumps(_world(args.child[1]), default=str))
    else:
        print(json.dumps(run(worlds=tuple(args.worlds.split(","))), indent=2, default=str))
