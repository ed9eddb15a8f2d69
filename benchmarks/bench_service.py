"""Service latency under load: ``next_best_action`` for one case (online features, both models, the
policy, the audit write) at 100 and 200 requests a second from a load generator in its own process
on loopback: wrk (C, one thread, paced by ``benchmarks/wrk_service.lua``) when it is installed,
else locust (``benchmarks/locust_service.py``); the figures say which ran.

A simulated world of 1,000 cases (as the service's tests build it: ``tests/service_world.py``) is
served by ``concord serve --workers 2 --no-access-log`` (two processes for two cores). Each rate runs
for ``SECONDS`` after a warm-up of ``WARMUP`` seconds at the same rate. Besides p50/p99 and the
throughput served, each rate reports the service's CPU seconds per request (its processes' user +
system time over the run / requests served: less sensitive to other work on the machine than the
latencies) and the 1-minute load average at its end. With ``--probe`` the workers run the probe of
``serving.probe`` (``CONCORD_PROBE_DIR``; off by default, as its watcher thread wakes every
millisecond and takes the worker's interpreter lock each time): each rate also reports the
requests each worker served and counts of what
took over 20 ms inside them (requests, waits before a request reached the worker, gen-2 garbage
collections, late wake-ups of a thread sleeping 1 ms, the longest WAL checkpoint), robust to the
machine's other work where wrk's p99 is not. In the same run, with the service idle, the
bare in-process work for the same cases: one Feast online read of ``settlement_v1`` and both
champions' LightGBM ``Booster.predict`` (one thread); the ratio of the service's p50 at 100 requests
a second to that bare p50 (target at most 4), and the service's p99 (target under 20 ms).

    python benchmarks/bench_service.py [--probe] [--threads N]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECONDS = 30
WARMUP = 5
RATES = (100, 200)
CASES = 1000
SERVE = ("--workers", "2", "--no-access-log")


def _bare(home: Path, case_ids: list[str]) -> dict:
    """p50/p99 (ms) of one Feast online read plus both champions' booster predictions, per case."""
    from sqlalchemy import text

    from concord.db import make_engine
    from concord.settings import Settings
    from features.repo import SETTLEMENT_V1
    from features.store.config import feature_store
    from features.store.retrieval import feature_service
    from models.fast_path import FastOdds
    from training.scoring import champion

    settings = Settings.from_env({"CONCORD_HOME": str(home), "CONCORD_PSEUDONYM_KEY": "bench"})
    engine = make_engine(settings, migrate=False)
    with engine.connect() as connection:
        rows = {
            r.case_id: (int(r.id), r.debtor_key or "")
            for r in connection.execute(text("SELECT id, case_id, debtor_key FROM cases"))
        }
    engine.dispose()
    store = feature_store(settings, serving=True)
    service = feature_service(store, SETTLEMENT_V1)
    models = [FastOdds(champion(settings, name)[0]) for name in ("reachability", "settlement")]
    boosters = [(model, model.booster) for model in models if model.booster is not None]
    times = []
    for i in range(600):
        pk, key = rows[case_ids[i % len(case_ids)]]
        started = time.perf_counter()
        values = store.get_online_features(
            features=service, entity_rows=[{"case_pk": pk, "debtor_key": key, "decision_ts": dt.datetime.now(dt.UTC)}]
        ).to_dict()
        features = {k: v[0] for k, v in values.items()}
        for model, booster in boosters:  # LightGBM's own Booster.predict, not the service's single-row call
            booster.predict(model.row(features), num_threads=1)
        times.append(time.perf_counter() - started)
    ms = np.array(times[100:]) * 1e3
    return {"bare_p50_ms": round(float(np.median(ms)), 2), "bare_p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds so far of the given processes (those still running)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _service_pids(service: object) -> list[int]:
    return [p.pid for p in service._processes()]  # type: ignore[attr-defined]


def _wrk(url: str, env: dict[str, str], rate: int, seconds: int) -> dict:
    """One paced wrk run at ``rate`` requests a second; its figures (the Lua script's JSON line)."""
    connections = max(8, rate // 5)  # idle connections cost nothing; enough to keep the pace when slow
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "benchmarks" / "wrk_service.lua"),
            url,
        ],
        env={**env, "CONCORD_BENCH_RATE": str(rate), "CONCORD_BENCH_THREADS": "1"},
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures: {result.stdout[-500:]} {result.stderr[-500:]}")
    return json.loads(line)


def _worker_side(folder: Path, rate: int, since: float, until: float) -> dict:
    """What the workers' probe (``serving.probe``) saw between ``since`` and ``until``: requests per
    worker, and counts of what took over 20 ms (less sensitive to other work on the machine than
    wrk's p99)."""
    from serving import probe

    seen = probe.summary(probe.read(folder), since, until, over=0.020)
    return {
        f"requests_per_worker_{rate}rps": seen["requests_per_worker"],
        f"in_worker_over_20ms_{rate}rps": seen["in_worker_over"],
        f"queued_over_20ms_{rate}rps": seen["queued_over"],
        f"gen2_collections_{rate}rps": seen["gc2"],
        f"gc_max_ms_{rate}rps": seen["gc_max_ms"],
        f"late_wakeups_over_20ms_{rate}rps": seen["lag_over"],
        f"checkpoint_max_ms_{rate}rps": max(
            (v for k, v in seen["span_max_ms"].items() if k.startswith("checkpoint")), default=None
        ),
    }


def _load(url: str, key: str, case_ids: list[str], rate: int, folder: Path, pids: list[int]) -> dict:
    """Load the service at ``rate`` requests a second (wrk, else locust); figures at steady state."""
    env = {**os.environ, "CONCORD_BENCH_KEY": key, "CONCORD_BENCH_CASES": ",".join(case_ids)}
    if shutil.which("wrk"):
        _wrk(url, env, rate, WARMUP)
        cpu = _cpu_seconds(pids)
        since = time.time()
        got = _wrk(url, env, rate, SECONDS)
        until = time.time()
        cpu = _cpu_seconds(pids) - cpu
        worker_side = {}
        if (folder / "probe").is_dir():
            time.sleep(1.5)  # the probe writes its lines every second
            worker_side = _worker_side(folder / "probe", rate, since, until)
        requests, p50, p99 = got["requests"], got["p50_ms"], got["p99_ms"]
        throughput, failures = requests / got["duration_s"], got["errors_status"] + got["errors_other"]
    else:
        prefix = folder / f"locust-{rate}"
        locust = Path(sys.executable).with_name("locust")
        cpu = _cpu_seconds(pids)  # locust's warm-up (spawning, then --reset-stats) is inside this span
        subprocess.run(
            [
                str(locust),
                "-f",
                str(ROOT / "benchmarks" / "locust_service.py"),
                "--headless",
                "-u",
                str(rate),
                "-r",
                str(rate),
                "--run-time",
                f"{SECONDS + WARMUP}s",
                "--reset-stats",
                "--host",
                url,
                "--csv",
                str(prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            env=env,
            check=False,
            capture_output=True,
            timeout=SECONDS * 4 + 60,
        )
        cpu = _cpu_seconds(pids) - cpu
        with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
            row = next(r for r in csv.DictReader(handle) if r["Name"] == "next_best_action")
        requests, p50, p99 = int(row["Request Count"]), float(row["50%"]), float(row["99%"])
        throughput, failures = float(row["Requests/s"]), int(row["Failure Count"])
        requests_in_span = max(1.0, throughput * (SECONDS + WARMUP))
        return {
            f"p50_ms_{rate}rps": p50,
            f"p99_ms_{rate}rps": p99,
            f"throughput_{rate}rps": round(throughput, 1),
            f"failures_{rate}rps": failures,
            f"requests_{rate}rps": requests,
            f"service_cpu_ms_per_request_{rate}rps": round(cpu / requests_in_span * 1e3, 2),
            f"load_1min_after_{rate}rps": round(os.getloadavg()[0], 1),
        }
    return {
        f"p50_ms_{rate}rps": round(p50, 2),
        f"p99_ms_{rate}rps": round(p99, 2),
        f"throughput_{rate}rps": round(throughput, 1),
        f"failures_{rate}rps": failures,
        f"requests_{rate}rps": requests,
        f"service_cpu_ms_per_request_{rate}rps": round(cpu / max(requests, 1) * 1e3, 2),
        f"load_1min_after_{rate}rps": round(os.getloadavg()[0], 1),
        **worker_side,
    }


def run(probe: bool = False, threads: int | None = None) -> dict:
    from tests.service_world import Service, build_world, make_key

    serve = (*SERVE, "--threads", str(threads)) if threads else SERVE

    with tempfile.TemporaryDirectory(prefix="concord-bench-service-") as scratch:
        root = Path(scratch)
        env = {"CONCORD_HOME": str(root / "home"), "CONCORD_PSEUDONYM_KEY": "bench"}
        # The workers' probe (serving.probe) only when asked: its watcher thread wakes every millisecond.
        serve_env = {**env, "CONCORD_PROBE_DIR": str(root / "probe")} if probe else env
        started = time.perf_counter()
        build_world(root, env, "simulated", CASES)
        world_s = time.perf_counter() - started
        import pandas as pd

        cases = pd.read_csv(root / "world" / "cases.csv", dtype=str)
        creditor = cases["creditor"].value_counts().index[0]
        case_ids = cases.loc[cases["creditor"] == creditor, "case_id"].tolist()
        key = make_key(env, "platform", "--creditor", creditor)
        service = Service(serve_env, root / "service.log", *serve).start()
        try:
            figures: dict = {
                "cases": CASES,
                "serve_options": " ".join(serve),
                "probe": probe,
                "world_seconds": round(world_s),
                "load_generator": "wrk" if shutil.which("wrk") else "locust",
                "seconds_per_rate": SECONDS,
                "cpus": os.cpu_count(),
                "load_1min": round(os.getloadavg()[0], 1),
            }
            figures.update(_bare(Path(env["CONCORD_HOME"]), case_ids))
            pids = _service_pids(service)
            for rate in RATES:
                figures.update(_load(service.url, key, case_ids, rate, root, pids))
        finally:
            service.stop()
    figures["ratio_p50_100rps_to_bare"] = round(figures["p50_ms_100rps"] / max(figures["bare_p50_ms"], 1e-9), 1)
    return {"service_nba_one_case": figures}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="run the workers' probe and report what it saw")
    parser.add_argument("--threads", type=int, help="threads per worker (concord serve --threads)")
    options = parser.parse_args()
    print(json.dumps(run(options.probe, options.threads), indent=2))
