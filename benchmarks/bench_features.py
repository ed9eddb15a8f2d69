"""Feature-store figures: the pipeline from a synthetic world to the online store, and online
retrieval latency of the serving FeatureService.

Pipeline for N cases: simulate -> import (six tables, as a backfill) -> build the offline
tables -> apply + materialise into an online store. Each stage runs in its own process; its
wall time and the peak resident memory of its process tree (the stage and its worker
processes, sampled every 0.2 s with psutil) are reported, and ``total`` sums the stages.

``make bench`` runs it twice: 1,000,000 cases into Redis (the production profile; target
under 10 minutes and 8 GiB) and 200,000 cases into the embedded SQLite store.

Online: ``reachability_v1`` for 1 case and for 100 cases, p50 and p99 over a few hundred calls,
with a long-lived FeatureStore (as the service holds one), on each pipeline's store.

    python benchmarks/bench_features.py --cases 200000 --store sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import peak_rss_mib, run_child  # noqa: E402

TABLES = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
DEFAULT_REDIS_URL = os.environ.get("CONCORD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _settings(home: Path, redis_url: str | None = None):  # noqa: ANN202 - imported lazily in children
    os.environ["CONCORD_HOME"] = str(home)
    os.environ.setdefault("CONCORD_PSEUDONYM_KEY", "benchmark")
    if redis_url:
        os.environ["CONCORD_REDIS_URL"] = redis_url
    else:
        os.environ.pop("CONCORD_REDIS_URL", None)
    os.environ.pop("CONCORD_DATABASE_URL", None)
    from concord.settings import get_settings

    return get_settings()


# --------------------------------------------------------------------------- stages (children)


def stage_simulate(cases: int, seed: int, world: Path) -> dict:
    """Simulate a world of ``cases`` cases into ``world`` as parquet."""
    from simulator.world import simulate_world
    from simulator.writers import write_world

    started = time.perf_counter()
    paths = write_world(simulate_world(cases, seed), world, "parquet")
    return {"cases": cases, "seconds": round(time.perf_counter() - started, 1), "files": len(paths)}


def stage_import(home: Path, world: Path) -> dict:
    """Import the six contract tables as a historical backfill."""
    settings = _settings(home)
    from concord.db import make_engine
    from ingestion.importer import import_file

    engine = make_engine(settings)
    figures: dict[str, object] = {}
    started = time.perf_counter()
    rows = 0
    for table in TABLES:
        t0 = time.perf_counter()
        report = import_file(table, world / f"{table}.parquet", settings, engine, received_at=None)
        figures[f"{table}_s"] = round(time.perf_counter() - t0, 1)
        rows += report.rows_read
    figures.update(rows=rows, seconds=round(time.perf_counter() - started, 1))
    return figures


def stage_build(home: Path) -> dict:
    """Build the offline feature tables."""
    settings = _settings(home)
    from features.offline.build import build_offline_tables, offline_dir

    started = time.perf_counter()
    build_offline_tables(settings)
    seconds = time.perf_counter() - started
    manifest = json.loads((offline_dir(settings) / "manifest.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "rows": sum(manifest["rows"].values()),
        "case_state_rows": manifest["rows"]["case_state"],
        **{f"{name}_s": value for name, value in manifest["table_seconds"].items()},
    }


def stage_materialize(home: Path, redis_url: str | None, project: str) -> dict:
    """Apply the definitions and materialise everything into the online store."""
    settings = _settings(home, redis_url)
    import warnings

    from features.store.config import apply, feature_store
    from features.store.materialisation import materialize

    warnings.simplefilter("ignore")
    store = feature_store(settings, project)
    started = time.perf_counter()
    apply(settings, project, store=store)
    done = materialize(settings, project=project, store=store)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "entities": sum(run.entities for run in done.values()),
        **{f"{view}_s": run.seconds for view, run in done.items()},
    }


def stage_online(home: Path, redis_url: str | None, project: str, calls: int) -> dict:
    """p50/p99 latency of ``reachability_v1`` for 1 and for 100 cases."""
    settings = _settings(home, redis_url)
    import warnings

    import numpy as np

    from features.repo import REACHABILITY_V1
    from features.store.config import feature_store
    from features.store.retrieval import case_entities, online_features

    warnings.simplefilter("ignore")
    store = feature_store(settings, project)
    entities = case_entities(settings)
    rng = np.random.default_rng(7)
    figures: dict[str, object] = {}
    for size in (1, 100):
        samples = []
        for call in range(calls + 20):  # the first 20 warm the caches
            picked = entities.iloc[rng.integers(0, len(entities), size)].to_dict("records")
            started = time.perf_counter()
            result = online_features(settings, picked, REACHABILITY_V1, project, store=store)
            elapsed = time.perf_counter() - started
            if call >= 20:
                samples.append(elapsed * 1000)
        assert len(result["attempts_total"]) == size
        figures[f"p50_ms_{size}"] = round(float(np.percentile(samples, 50)), 2)
        figures[f"p99_ms_{size}"] = round(float(np.percentile(samples, 99)), 2)
    figures["calls"] = calls
    return figures


def stage_teardown(home: Path, redis_url: str | None, project: str) -> dict:
    """Remove a benchmark project's keys from Redis."""
    settings = _settings(home, redis_url)
    import warnings

    from features.store.config import feature_store

    warnings.simplefilter("ignore")
    feature_store(settings, project).teardown()
    return {}


# --------------------------------------------------------------------------- driver


def _child(*args: str) -> dict:
    return run_child(__file__, *args)


def _redis_available(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def run(
    cases: int = 1_000_000,
    seed: int = 1,
    calls: int = 300,
    store: str = "redis",
    redis_url: str | None = DEFAULT_REDIS_URL,
    scratch: Path | None = None,
) -> dict:
    """The pipeline for ``cases`` cases into ``store`` (``redis`` or ``sqlite``), then the online
    latency benchmark on it; returns the figures. Redis keys are removed afterwards."""
    results: dict[str, dict] = {}
    if store == "redis" and not (redis_url and _redis_available(redis_url)):
        return {f"features_{cases}": {"skipped": f"no Redis at {redis_url}"}}
    redis = redis_url if store == "redis" and redis_url else ""
    project = f"concord_bench_{uuid.uuid4().hex[:8]}" if store == "redis" else "concord"
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        root = Path(folder)
        world, home = root / "world", root / "home"
        prefix = f"features_{cases}"
        try:
            stages = {
                "simulate": _child("simulate", str(cases), str(seed), str(world)),
                "import": _child("import", str(home), str(world)),
                "build": _child("build", str(home)),
                f"materialize_{store}": _child("materialize", str(home), redis, project),
            }
            for name, figures in stages.items():
                results[f"{prefix}_{name}"] = figures
            results[f"{prefix}_total_{store}"] = {
                "seconds": round(sum(figures["wall_s"] for figures in stages.values()), 1),
                "peak_rss_mib": max(figures["tree_peak_rss_mib"] for figures in stages.values()),
                **{f"{name}_s": figures["wall_s"] for name, figures in stages.items()},
            }
            online = _child("online", str(home), redis, project, str(calls))
            for size in (1, 100):
                results[f"features_online_{store}_{size}_of_{cases}"] = {
                    "p50_ms": online[f"p50_ms_{size}"],
                    "p99_ms": online[f"p99_ms_{size}"],
                    "calls": calls,
                }
        finally:
            if store == "redis":
                _child("teardown", str(home), redis, project)
    return results


def run_all() -> dict:
    """What ``make bench`` runs: 1,000,000 cases into Redis, 200,000 into SQLite."""
    return {**run(1_000_000, store="redis"), **run(200_000, store="sqlite")}


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the temporary world and home")
    args = parser.parse_args()
    if args.child:
        stage, *rest = args.child
        redis = (rest[1] or None) if stage in ("materialize", "online", "teardown") else None
        figures = {
            "simulate": lambda: stage_simulate(int(rest[0]), int(rest[1]), Path(rest[2])),
            "import": lambda: stage_import(Path(rest[0]), Path(rest[1])),
            "build": lambda: stage_build(Path(rest[0])),
            "materialize": lambda: stage_materialize(Path(rest[0]), redis, rest[2]),
            "online": lambda: stage_online(Path(rest[0]), redis, rest[2], int(rest[3])),
            "teardown": lambda: stage_teardown(Path(rest[0]), redis, rest[2]),
        }[stage]()
        figures["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(figures))
        return
    started = time.time()
    results = run(args.cases, args.seed, args.calls, args.store, DEFAULT_REDIS_URL, args.scratch)
    for name, figures in results.items():
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    print(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    _main()
