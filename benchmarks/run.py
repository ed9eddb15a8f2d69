"""`make bench`: run every benchmark, print the figures and keep them in benchmarks/out/."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_import  # noqa: E402

TARGETS = {
    "import_csv_1000000": ("rows_per_s", ">=", 50_000),
    "import_xlsx_100000": ("rows_per_s", ">=", 10_000),
}


def main() -> None:
    results: dict[str, dict] = {}
    started = time.time()
    results.update(bench_import.run())
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    record = {"machine": platform.platform(), "cpus": __import__("os").cpu_count(), "seconds": round(time.time() - started),
              "results": results}
    (out / "results.json").write_text(json.dumps(record, indent=2))
    for name, figures in results.items():
        line = ", ".join(f"{k}={v}" for k, v in figures.items())
        target = TARGETS.get(name)
        verdict = ""
        if target:
            key, _op, bound = target
            verdict = f"  [target {key} >= {bound:,}: {'met' if figures[key] >= bound else 'NOT met'}]"
        print(f"{name}: {line}{verdict}")
    print(f"peak memory target 2 GiB: {'met' if all(f.get('peak_rss_mib', 0) < 2048 for f in results.values()) else 'NOT met'}")


if __name__ == "__main__":
    main()
