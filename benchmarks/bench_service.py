"""Service latency under load: ``next_best_action`` for one case (online features, both models, the
policy, the audit write) at 100 and 200 requests a second from locust in its own process on loopback.

A simulated world of 1,000 cases (as the service's tests build it: ``tests/service_world.py``) is
served by ``concord serve --workers 2 --no-access-log`` (two processes for two cores); locust's
users each ask for one random case of one creditor a second for ``SECONDS`` (statistics reset
once all users run). In the same run, with the service idle, the bare in-process work for the
same cases: one Feast online read of ``settlement_v1`` and both champions' LightGBM
``Booster.predict`` (one thread); the ratio of the service's p50 at 100 requests a second to that
bare p50 (target at most 4), and the service's p99 (target under 20 ms).

    python benchmarks/bench_service.py
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECONDS = 30
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
        rows = {r.case_id: (int(r.id), r.debtor_key or "") for r in connection.execute(
            text("SELECT id, case_id, debtor_key FROM cases"))}
    engine.dispose()
    store = feature_store(settings, serving=True)
    service = feature_service(store, SETTLEMENT_V1)
    models = [FastOdds(champion(settings, name)[0]) for name in ("reachability", "settlement")]
    times = []
    for i in range(600):
        pk, key = rows[case_ids[i % len(case_ids)]]
        started = time.perf_counter()
        values = store.get_online_features(features=service, entity_rows=[
            {"case_pk": pk, "debtor_key": key, "decision_ts": dt.datetime.now(dt.UTC)}]).to_dict()
        features = {k: v[0] for k, v in values.items()}
        for model in models:
            model.raw(model.row(features))
        times.append(time.perf_counter() - started)
    ms = np.array(times[100:]) * 1e3
    return {"bare_p50_ms": round(float(np.median(ms)), 2), "bare_p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _load(url: str, key: str, case_ids: list[str], rate: int, folder: Path) -> dict:
    """Run locust headless at ``rate`` users of one request a second; its figures at steady state."""
    prefix = folder / f"locust-{rate}"
    env = {**os.environ, "CONCORD_BENCH_KEY": key, "CONCORD_BENCH_CASES": ",".join(case_ids)}
    locust = Path(sys.executable).with_name("locust")
    subprocess.run([str(locust), "-f", str(ROOT / "benchmarks" / "locust_service.py"), "--headless",
                    "-u", str(rate), "-r", str(rate), "--run-time", f"{SECONDS + 5}s", "--reset-stats",
                    "--host", url, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
                   env=env, check=False, capture_output=True, timeout=SECONDS * 4 + 60)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "next_best_action")
    return {f"p50_ms_{rate}rps": float(row["50%"]), f"p99_ms_{rate}rps": float(row["99%"]),
            f"throughput_{rate}rps": round(float(row["Requests/s"]), 1),
            f"failures_{rate}rps": int(row["Failure Count"]), f"requests_{rate}rps": int(row["Request Count"])}


def run() -> dict:
    from tests.service_world import Service, build_world, make_key

    with tempfile.TemporaryDirectory(prefix="concord-bench-service-") as scratch:
        root = Path(scratch)
        env = {"CONCORD_HOME": str(root / "home"), "CONCORD_PSEUDONYM_KEY": "bench"}
        started = time.perf_counter()
        build_world(root, env, "simulated", CASES)
        world_s = time.perf_counter() - started
        import pandas as pd

        cases = pd.read_csv(root / "world" / "cases.csv", dtype=str)
        creditor = cases["creditor"].value_counts().index[0]
        case_ids = cases.loc[cases["creditor"] == creditor, "case_id"].tolist()
        key = make_key(env, "platform", "--creditor", creditor)
        service = Service(env, root / "service.log", *SERVE).start()
        try:
            figures: dict = {"cases": CASES, "serve_options": " ".join(SERVE), "world_seconds": round(world_s),
                             "seconds_per_rate": SECONDS,
                             "load_1min": round(os.getloadavg()[0], 1)}
            figures.update(_bare(Path(env["CONCORD_HOME"]), case_ids))
            for rate in RATES:
                figures.update(_load(service.url, key, case_ids, rate, root))
        finally:
            service.stop()
    figures["ratio_p50_100rps_to_bare"] = round(figures["p50_ms_100rps"] / max(figures["bare_p50_ms"], 1e-9), 1)
    return {"service_nba_one_case": figures}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
