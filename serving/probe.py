"""Where a worker's slow requests lose their time: an opt-in probe for benchmarks.

Off unless ``CONCORD_PROBE_DIR`` names a folder. Then each worker appends JSON lines to
``worker-<pid>.jsonl`` there (written by its own thread every second, never inside a request):

- ``req``: one per API request: wall-clock times (epoch seconds) of its arrival in our ASGI stack,
  and of its answer's end; ``sent`` when the client put its own send time (epoch milliseconds) in
  an ``x-bench-sent`` header, ``id`` when it sent ``x-bench-id`` (echoed back in the answer);
- ``gc``: a garbage collection of generation 2 (or any that took over 5 ms): its duration, and
  the CPU time it used (``cpu``: what it cost, whatever else ran on the machine);
- ``lag``: a thread that asks to sleep 1 ms and woke at least 5 ms late (the GIL held by another
  thread of the worker, or the machine's cores busy elsewhere): when and how late;
- ``span``: a named piece of work timed by :func:`span` (a checkpoint, the background sync).

``benchmarks/bench_service.py`` sets it and summarises the files (:func:`summary`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV = "CONCORD_PROBE_DIR"
LAG_SECONDS = 0.005
GC_SECONDS = 0.005

_lines: list[dict[str, Any]] = []
_lock = threading.Lock()
_started = False


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def note(kind: str, **fields: Any) -> None:
    """Keep one line for the file (no I/O here)."""
    if _started:
        fields["k"] = kind
        with _lock:
            _lines.append(fields)


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """Time a piece of work as a ``span`` line (when the probe runs)."""
    if not _started:
        yield
        return
    began = time.time()
    try:
        yield
    finally:
        note("span", name=name, at=began, s=time.time() - began)


def _gc_callback(phase: str, info: dict[str, Any], _began: list[float] = [0.0, 0.0]) -> None:  # noqa: B006
    if phase == "start":
        _began[0], _began[1] = time.perf_counter(), time.thread_time()
        return
    took = time.perf_counter() - _began[0]
    if info.get("generation") == 2 or took > GC_SECONDS:
        note(
            "gc",
            gen=info.get("generation"),
            at=time.time() - took,
            s=took,
            cpu=time.thread_time() - _began[1],
            collected=info.get("collected"),
        )


def _watch(path: Path) -> None:
    """Sleep 1 ms at a time, noting late wake-ups; write the kept lines every second."""
    flushed = time.monotonic()
    while True:
        before = time.perf_counter()
        time.sleep(0.001)
        late = time.perf_counter() - before - 0.001
        if late > LAG_SECONDS:
            note("lag", at=time.time() - late, s=late)
        if time.monotonic() - flushed > 1.0:
            flushed = time.monotonic()
            with _lock:
                lines = _lines[:]
                del _lines[:]
            if lines:
                with open(path, "a", encoding="utf-8") as out:
                    out.writelines(json.dumps(line) + "\n" for line in lines)


def start() -> bool:
    """Start the probe in this worker when ``CONCORD_PROBE_DIR`` is set; True when it runs."""
    global _started
    folder = os.environ.get(ENV)
    if not folder or _started:
        return _started
    Path(folder).mkdir(parents=True, exist_ok=True)
    _started = True
    gc.callbacks.append(_gc_callback)
    threading.Thread(
        target=_watch, args=(Path(folder) / f"worker-{os.getpid()}.jsonl",), name="concord-probe", daemon=True
    ).start()
    return True


class Probe:
    """ASGI middleware noting each API request's arrival and end (only added when the probe is on)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _started:
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        sent = bench_id = None
        for key, value in scope["headers"]:
            if key == b"x-bench-sent":
                sent = float(value) / 1e3
            elif key == b"x-bench-id":
                bench_id = value
        status = [0]

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if bench_id is not None:
                    message = {**message, "headers": [*message.get("headers", []), (b"x-bench-id", bench_id)]}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            note(
                "req",
                path=scope["path"],
                status=status[0],
                sent=sent,
                at=arrived,
                end=time.time(),
                id=bench_id.decode() if bench_id else None,
                pid=os.getpid(),
            )


def read(folder: Path) -> list[dict[str, Any]]:
    """Every line the workers wrote under ``folder``."""
    out = []
    for path in sorted(folder.glob("worker-*.jsonl")):
        pid = path.stem.split("-", 1)[1]
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                out.append({**json.loads(line), "worker": pid})
    return out


def summary(
    lines: list[dict[str, Any]], since: float = 0.0, until: float = float("inf"), over: float = 0.020
) -> dict[str, Any]:
    """Counts of what took over ``over`` seconds between ``since`` and ``until`` (epoch seconds):
    requests whose time in the worker was over it, requests that waited over it before reaching
    the worker's ASGI stack (queued in the socket or the event loop), gen-2 collections, late
    wake-ups, spans; and the requests each worker served."""
    inside = [x for x in lines if since <= x.get("at", 0) < until]
    reqs = [x for x in inside if x["k"] == "req"]
    per_worker: dict[str, int] = {}
    for x in reqs:
        per_worker[x["worker"]] = per_worker.get(x["worker"], 0) + 1
    slow = [x for x in reqs if x["end"] - x["at"] > over]
    queued = [x for x in reqs if x.get("sent") is not None and x["at"] - x["sent"] > over]
    gcs = [x for x in inside if x["k"] == "gc"]
    lags = [x for x in inside if x["k"] == "lag"]
    spans = [x for x in inside if x["k"] == "span"]
    return {
        "requests": len(reqs),
        "requests_per_worker": sorted(per_worker.values(), reverse=True),
        "in_worker_over": len(slow),
        "queued_over": len(queued),
        "gc2": sum(1 for x in gcs if x["gen"] == 2),
        "gc_max_ms": round(max((x["s"] for x in gcs), default=0) * 1e3, 1),
        "lag_over": sum(1 for x in lags if x["s"] > over),
        "lag_max_ms": round(max((x["s"] for x in lags), default=0) * 1e3, 1),
        "spans_over": sorted({x["name"] for x in spans if x["s"] > over}),
        "span_max_ms": {
            name: round(max(x["s"] for x in spans if x["name"] == name) * 1e3, 1)
            for name in sorted({x["name"] for x in spans})
        },
    }
