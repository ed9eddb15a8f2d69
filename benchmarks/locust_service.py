"""The load ``benchmarks/bench_service.py`` puts on the service: platform users, each asking for the next
best action of one case at a steady one request a second (users = requests per second).

Run by locust in its own process: ``CONCORD_BENCH_KEY`` (a platform key) and ``CONCORD_BENCH_CASES``
(comma-separated case ids of the key's creditor) come from the environment.
"""

from __future__ import annotations

import os
import random

from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

CASES = [c for c in os.environ.get("CONCORD_BENCH_CASES", "").split(",") if c]
KEY = os.environ.get("CONCORD_BENCH_KEY", "")


class Platform(FastHttpUser):
    wait_time = constant_throughput(1.0)

    @task
    def next_best_action(self) -> None:
        case_id = random.choice(CASES)
        with self.client.post(
            "/next_best_action",
            json={"case_id": case_id},
            name="next_best_action",
            headers={"Authorization": f"Bearer {KEY}"},
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"status {answer.status_code}")
