"""Worlds and running services for the service's tests.

``python -m tests.service_world HOME simulated|foreign N`` builds a world under ``HOME`` (settings
from the environment, so PostgreSQL and Redis can be given): its six tables imported as history,
features built, applied and materialised, both models trained (a fixed small booster: these tests
are about the service, not the models) and promoted. The world ends yesterday, so that "now", when
the service decides, is just after it.

:class:`Service` starts ``concord serve`` (which migrates, then runs ``bentoml serve``) on a free
port in its own process group, waits for ``/readyz``, and stops it, politely or with kill -9.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("mediators", "cases", "contact_checks", "capacity", "litigation", "events")
REDIS_DB = 11  # the production world's online store: a database of its own on the shared server


def build(home: Path, kind: str, cases: int) -> None:
    """Build the world (run in its own process: ``main``)."""
    from concord.db import make_engine
    from concord.settings import get_settings
    from features.offline.build import build_offline_tables
    from features.store.config import apply
    from features.store.materialisation import materialize
    from ingestion.importer import import_file
    from training import registry
    from training.pipeline import train

    settings = get_settings()
    end = dt.date.today() - dt.timedelta(days=1)
    if kind == "simulated":
        from simulator.world import simulate_world
        from simulator.writers import write_world

        paths = write_world(simulate_world(cases, 5, end=end), home / "world", "csv")
    else:
        from tests.foreign_world import build as build_foreign

        paths = build_foreign(home / "world", n_cases=cases, snapshot=end - dt.timedelta(days=60), follow_days=59)
    engine = make_engine(settings)
    for table in TABLES:
        report = import_file(table, paths[table], settings, engine, received_at=None)
        assert report.rejected == 0, (table, report.rejections[:3])
    build_offline_tables(settings)
    apply(settings)
    materialize(settings)
    as_of = dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)
    for model in ("reachability", "settlement"):
        train(settings, engine, model, as_of, params={"n_estimators": 80})
        registry.promote(settings, engine, model)
    engine.dispose()


class WorldBuild:
    """A world being built in a child process (``main``) with ``env`` (its CONCORD_* settings).

    Started early, the build runs beside the tests that come before the ones needing it (most
    tests use one core; CI has two); :meth:`wait` joins it and fails with the end of its log. The
    child writes its exit status to ``build.status`` under ``home``, so that another process (a
    pytest-xdist worker) can wait for a build it did not start: :meth:`attach`."""

    def __init__(self, home: Path, env: dict[str, str], kind: str = "simulated", cases: int = 1000) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / "build.log"
        self.status = home / "build.status"
        with open(self.log, "wb") as out:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "tests.service_world", str(home), kind, str(cases)],
                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid
        (home / "build.pid").write_text(str(self.pid))

    @classmethod
    def attach(cls, home: Path) -> WorldBuild:
        """The build another process started under ``home``."""
        build = cls.__new__(cls)
        build.log, build.status, build.process = home / "build.log", home / "build.status", None
        build.pid = int((home / "build.pid").read_text())
        return build

    def _running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def wait(self, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while not self.status.exists() and self._running():
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the world was not built in {timeout} s: {self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        if self.process is not None:
            self.process.wait()
        code = self.status.read_text().strip() if self.status.exists() else "no status (killed?)"
        assert code == "0", f"the world build ended with {code}: {self.log.read_text()[-3000:]}"

    def reap(self) -> None:
        """Collect the exit of a finished build this process started (no zombie left)."""
        if self.process is not None:
            self.process.poll()

    def stop(self) -> None:
        """End a build nobody waited for (the session ended early)."""
        if not self.status.exists() and self._running():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(self.pid).kill()
        if self.process is not None:
            self.process.wait()


def build_world(home: Path, env: dict[str, str], kind: str = "simulated", cases: int = 1000) -> None:
    """Build a world in a child process with ``env`` (its CONCORD_* settings)."""
    WorldBuild(home, env, kind, cases).wait(timeout=900)


def open_production(postgres_url: str, redis_url: str, root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a home under ``root`` on the production profile: a new PostgreSQL
    database (ledger and audit) and Redis database ``REDIS_DB`` (online store), emptied first;
    and what :func:`close_production` needs to drop and empty them."""
    import redis
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"concord_service_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    online = make_url(redis_url).set(database=str(REDIS_DB)).render_as_string(hide_password=False)
    client = redis.Redis.from_url(online)
    try:
        client.flushdb()
    finally:
        client.close()
    env = {
        "CONCORD_HOME": str(root / "home"),
        "CONCORD_PSEUDONYM_KEY": "service-test",
        "CONCORD_REDIS_URL": online,
        "CONCORD_DATABASE_URL": make_url(postgres_url).set(database=name).render_as_string(hide_password=False),
    }
    return env, {"postgres_url": postgres_url, "database": name, "redis_url": online}


def close_production(made: dict[str, str]) -> None:
    """Empty the Redis database and drop the PostgreSQL database :func:`open_production` made."""
    import redis
    from sqlalchemy import create_engine, text

    client = redis.Redis.from_url(made["redis_url"])
    try:
        client.flushdb()
    finally:
        client.close()
    admin = create_engine(made["postgres_url"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{made["database"]}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def production_profile(postgres_url: str, redis_url: str, root: Path) -> Iterator[dict[str, str]]:
    """:func:`open_production` for the length of a ``with``; dropped and emptied afterwards."""
    env, made = open_production(postgres_url, redis_url, root)
    try:
        yield env
    finally:
        close_production(made)


def concord(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``concord ARGS`` in a child process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def make_key(env: dict[str, str], role: str, *scope: str) -> str:
    """A new API key from ``concord keys create`` (the last word of its output)."""
    result = concord(env, "keys", "create", "--role", role, *scope)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """``concord serve`` on a free port, in its own process group."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.args = args  # more options of `concord serve`
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "CONCORD_EVENT_SYNC_SECONDS": "1"}
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> Service:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "serving.cli", "serve", "--port", str(self.port), *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the service ended with {self.process.returncode}: {self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"the service was not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def _processes(self) -> list[psutil.Process]:
        """The service's processes: ``bentoml serve`` and its workers (circus puts each worker in a
        process group of its own, so a group signal would miss them)."""
        assert self.process is not None
        try:
            leader = psutil.Process(self.process.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """kill -9 every process of the service at once: a crash, nothing flushed or closed."""
        assert self.process is not None
        processes = self._processes()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        psutil.wait_procs(processes, timeout=30)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        processes = self._processes()
        self.process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=30)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def main(home: Path, kind: str, cases: int) -> int:
    """Build, then write the exit status to ``home/build.status`` (the waiters read it)."""
    code = 1
    try:
        build(home, kind, cases)
        code = 0
    finally:
        (home / "build.status").write_text(str(code))
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
