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


def run_child(script: str, *args: str, timeline: Path | None = None) -> dict:
    """Run ``script --child ARGS`` in its own process; it prints its figures as JSON on its
    last line. Adds ``wall_s`` and ``tree_peak_rss_mib`` (the process tree's peak).

    With ``timeline``, a line per 10 s goes to that file: seconds since the start, the tree's
    PSS and each process's RSS (MiB), so a peak can be matched with the stage that made it."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, "--child", *args], stdout=subprocess.PIPE, text=True)
    tree, peak, written = psutil.Process(proc.pid), 0, -10.0
    log = timeline.open("a", encoding="utf-8") if timeline else None
    while proc.poll() is None:
        try:
            processes = [tree, *tree.children(recursive=True)]
            infos = [p.memory_full_info() for p in processes]
            rss = sum(info.pss for info in infos)
        except psutil.Error:  # a worker ended between listing and reading
            rss, infos = 0, []
        peak = max(peak, rss)
        elapsed = time.perf_counter() - started
        if log and infos and elapsed - written >= 10:
            each = " ".join(f"{p.pid}:{round(i.rss / 2**20)}" for p, i in zip(processes, infos, strict=True))
            log.write(
                f"{elapsed:8.0f} s  tree {round(rss / 2**20):6d} MiB  peak {round(peak / 2**20):6d} MiB  rss {each}\n"
            )
            log.flush()
            written = elapsed
        time.sleep(0.2)
    if log:
        log.close()
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"{Path(script).name} --child {args[0]} failed with exit code {proc.returncode}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["tree_peak_rss_mib"] = max(round(peak / 2**20), figures.get("peak_rss_mib", 0))
    return figures
