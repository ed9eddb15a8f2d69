"""Import throughput and peak memory: a 1,000,000-row CSV and a 100,000-row xlsx case pool.

Each measurement runs in its own process; ``peak_rss_mib`` is the import process's own peak and
``tree_peak_rss_mib`` that of the import with its parsing workers (the figure for the 2 GiB
target; see benchmarks/common.py). The reference in
the same run is pandas reading the same file as text, so the figure travels across machines
as a ratio: how many times the bare parse the full import costs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import peak_rss_mib, run_child  # noqa: E402


def _measure_import(path: Path, home: Path) -> dict:
    os.environ["CONCORD_HOME"] = str(home)
    os.environ.setdefault("CONCORD_PSEUDONYM_KEY", "benchmark")
    from concord.db import make_engine
    from concord.settings import get_settings
    from ingestion.importer import import_file

    settings = get_settings()
    engine = make_engine(settings)
    started = time.perf_counter()
    report = import_file("cases", path, settings, engine)
    seconds = time.perf_counter() - started
    return {
        "rows": report.rows_read,
        "imported": report.imported,
        "seconds": round(seconds, 2),
        "rows_per_s": round(report.rows_read / seconds),
        "peak_rss_mib": peak_rss_mib(),
    }


def _measure_reference(path: Path) -> dict:
    import pandas as pd

    started = time.perf_counter()
    if path.suffix == ".xlsx":
        frame = pd.read_excel(path, dtype=str, engine="calamine")
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {"rows": len(frame), "seconds": round(time.perf_counter() - started, 2)}


def _child(kind: str, path: Path, home: Path) -> dict:
    return run_child(__file__, kind, str(path), str(home))


def run(csv_rows: int = 1_000_000, xlsx_rows: int = 100_000, repeat: int = 3) -> dict:
    """Build the pools, import each ``repeat`` times into a fresh SQLite ledger; return the figures.

    A shared machine's speed drifts from minute to minute, so each pool is imported (and read
    by the reference) ``repeat`` times, alternating: the figures are the fastest import and
    the fastest reference (the runs least disturbed), every import's rate listed beside them,
    and memory the largest of the runs.
    """
    from benchmarks.pools import case_pool, write_csv, write_xlsx

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        pools = (("csv", csv_rows, write_csv, ".csv"), ("xlsx", xlsx_rows, write_xlsx, ".xlsx"))
        for label, rows, writer, suffix in pools:
            path = writer(case_pool(rows, seed=1), scratch_path / f"pool{suffix}")
            references, runs = [], []
            for attempt in range(repeat):
                references.append(_child("reference", path, scratch_path)["seconds"])
                runs.append(_child("import", path, scratch_path / f"home-{label}-{attempt}"))
            measured = min(runs, key=lambda figures: figures["seconds"])
            for memory in ("peak_rss_mib", "tree_peak_rss_mib"):
                measured[memory] = max(figures[memory] for figures in runs)
            measured["runs_rows_per_s"] = [figures["rows_per_s"] for figures in runs]
            measured["reference_read_s"] = min(references)
            measured["import_over_read"] = round(measured["seconds"] / max(min(references), 1e-9), 1)
            results[f"import_{label}_{rows}"] = measured
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "HOME"))
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        kind, path, home = args.child
        result = _measure_import(Path(path), Path(home)) if kind == "import" else _measure_reference(Path(path))
        print(json.dumps(result))
    else:
        print(json.dumps(run(args.csv_rows, args.xlsx_rows, args.repeat), indent=2))
