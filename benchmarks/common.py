"""What the benchmarks share: running a stage in its own process and measuring its memory.

Peak memory is that of the stage's whole process tree (the stage and any worker processes it
starts), sampled every 0.2 s with psutil as the sum of proportional set sizes (PSS: pages a
forked worker shares with its parent count once, not once per process); the stage's own VmHWM
(from /proc, exact for that one process) is kept beside it as ``peak_rss_mib``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mib() -> int:
    """This process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, not inherited
    across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_child(script: str, *args: str) -> dict:
    """Run ``script --child ARGS`` in its own process; it prints its figures as JSON on its
    last line. Adds ``wall_s`` and ``tree_peak_rss_mib`` (the process tree's peak)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, "--child", *args], stdout=subprocess.PIPE, text=True)
    tree, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            rss = sum(p.memory_full_info().pss for p in [tree, *tree.children(recursive=True)])
        except psutil.Error:  # a worker ended between listing and reading
            rss = 0
        peak = max(peak, rss)
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"{Path(script).name} --child {args[0]} failed with exit code {proc.returncode}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["tree_peak_rss_mib"] = max(round(peak / 2**20), figures.get("peak_rss_mib", 0))
    return figures
