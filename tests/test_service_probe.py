"""The probe that tells where a service worker's slow requests lose their time (``serving.probe``,
on in benchmarks with ``CONCORD_PROBE_DIR``)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from serving import probe


def test_the_probe_times_requests_and_summarises_what_was_slow(tmp_path, monkeypatch):
    lines = [
        {"k": "req", "worker": "1", "at": 10.0, "end": 10.005, "sent": 9.999},
        {"k": "req", "worker": "1", "at": 11.0, "end": 11.050, "sent": 10.900},
        {"k": "req", "worker": "2", "at": 12.0, "end": 12.004, "sent": 11.999},
        {"k": "gc", "worker": "2", "gen": 2, "at": 12.5, "s": 0.3},
        {"k": "lag", "worker": "2", "at": 12.5, "s": 0.29},
        {"k": "span", "worker": "1", "name": "checkpoint audit.db", "at": 13.0, "s": 0.025},
        {"k": "req", "worker": "1", "at": 99.0, "end": 99.5, "sent": 98.0},  # outside the window
    ]
    assert probe.summary(lines, since=5, until=50) == {
        "requests": 3,
        "requests_per_worker": [2, 1],
        "in_worker_over": 1,
        "queued_over": 1,
        "gc2": 1,
        "gc_max_ms": 300.0,
        "lag_over": 1,
        "lag_max_ms": 290.0,
        "spans_over": ["checkpoint audit.db"],
        "span_max_ms": {"checkpoint audit.db": 25.0},
    }


def test_the_probe_notes_a_request_and_echoes_its_id(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "_started", True)
    monkeypatch.setattr(probe, "_lines", [])
    sent_at = time.time() * 1e3

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    headers: list[tuple[bytes, bytes]] = []

    async def send(message) -> None:
        if message["type"] == "http.response.start":
            headers.extend(message["headers"])

    scope = {
        "type": "http",
        "path": "/next_best_action",
        "headers": [(b"x-bench-id", b"1-7"), (b"x-bench-sent", f"{sent_at:.3f}".encode())],
    }
    asyncio.run(probe.Probe(app)(scope, None, send))
    assert (b"x-bench-id", b"1-7") in headers
    [line] = probe._lines
    assert line["k"] == "req" and line["id"] == "1-7" and line["status"] == 201
    assert line["sent"] == pytest.approx(sent_at / 1e3) and line["sent"] <= line["at"] <= line["end"]
    json.dumps(line)  # written as a JSON line
