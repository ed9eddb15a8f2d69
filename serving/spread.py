"""Spreading clients' connections over the service's worker processes.

The workers of ``bentoml serve`` accept connections from one shared socket, and whichever worker
wakes first accepts every connection waiting. A client that opens its pool at once (a platform's
HTTP client, a load generator) then sends everything to one worker, which runs at twice the load
while the other idles: with wrk's 20 keep-alive connections at 100 requests a second, 3,001/0 and
2,637/365 requests per worker were seen, and 801/0 in three of five 8-second runs.

So a worker that is busy when a request arrives (another of its requests still in flight) closes
the connection of one such request in ``RECYCLE_EVERY`` after answering it (``Connection: close``;
the client reconnects for its next request, about 0.1 ms on loopback). The reconnection goes to
whichever worker accepts it first; a busy worker sheds connections until it is no busier than the
other. Closing regardless of load gave 65/35 splits (reconnections favour the worker already
awake); closing only when busy, 56/44 (five 8-second runs each, load 8).

Active only with more than one worker (``concord serve --workers N`` sets ``CONCORD_SERVE_WORKERS``).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

RECYCLE_EVERY = 4
WORKERS_ENV = "CONCORD_SERVE_WORKERS"


def active() -> bool:
    """Whether the service runs in more than one worker process."""
    value = os.environ.get(WORKERS_ENV, "1")
    return value.isdigit() and int(value) > 1


class Spread:
    """ASGI middleware: of the HTTP requests arriving while another of this worker's is in flight,
    every ``every``-th has its connection closed after its answer."""

    def __init__(self, app: Any, every: int = RECYCLE_EVERY) -> None:
        self.app = app
        self.every = every
        self.in_flight = 0
        self._busy_answers = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.in_flight += 1  # the event loop's thread only: no lock needed
        try:
            if self.in_flight == 1 or next(self._busy_answers) % self.every:
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, _closing(send))
        finally:
            self.in_flight -= 1


def _closing(send: Any) -> Any:
    async def closing(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing
