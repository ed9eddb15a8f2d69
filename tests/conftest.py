"""Shared fixtures: an isolated CONCORD_HOME per test, and the real servers of the production
profile (PostgreSQL, Redis), which skip when unreachable unless CONCORD_REQUIRE_SERVICES=1."""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from concord.settings import Settings

REQUIRE_SERVICES = os.environ.get("CONCORD_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get("CONCORD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONCORD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Hypothesis checks behaviour, not speed (speed is the benchmarks' job): no per-example deadline,
# which failed test_parsing on a loaded machine (DeadlineExceeded at 557 ms > 200 ms).
hypothesis.settings.register_profile("concord", deadline=None)
hypothesis.settings.load_profile("concord")
# The hyperparameter search of worlds that tests use rather than test: the start settings and two
# more trials (the default is 30 trials or 600 s per model, which would dominate the suite).
SMALL_SEARCH = {"CONCORD_TUNING_TRIALS": "3", "CONCORD_TUNING_SECONDS": "60"}


def service_unavailable(what: str, error: Exception) -> None:
    """Skip, or fail when the services are required, naming the server and the reason."""
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; CONCORD_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(f"{message}; set CONCORD_REQUIRE_SERVICES=1 to make this a failure")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of the PostgreSQL server's ``test`` database (for creating scratch databases)."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as error:  # any driver error means: no usable server
        service_unavailable("PostgreSQL at " + make_url(POSTGRES_URL).render_as_string(), error)
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"concord_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as error:
        service_unavailable("Redis at " + REDIS_URL, error)
    finally:
        client.close()
    return REDIS_URL


def _environment(tmp_path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"CONCORD_HOME": str(tmp_path / "home"), "CONCORD_PSEUDONYM_KEY": "test-secret"}
    env.update(extra or {})
    return env


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Embedded defaults (SQLite under a temporary CONCORD_HOME), also set in the environment."""
    env = _environment(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CONCORD_DATABASE_URL", raising=False)
    return Settings.from_env(env)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_settings(request, tmp_path, monkeypatch) -> Settings:
    """Settings on each ledger backend in turn: SQLite, then the real PostgreSQL."""
    extra = {}
    if request.param == "postgresql":
        extra["CONCORD_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    env = _environment(tmp_path, extra)
    monkeypatch.delenv("CONCORD_DATABASE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env(env)


def _reachable(postgres: str, redis_server: str) -> bool:
    """Whether both servers answer (checked quietly: the fixtures that need them skip or fail)."""
    import redis

    engine = create_engine(postgres, connect_args={"connect_timeout": 3})
    client = redis.Redis.from_url(redis_server, socket_connect_timeout=3)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        return bool(client.ping())
    except Exception:  # any driver error means: not now
        return False
    finally:
        engine.dispose()
        client.close()


# Under pytest-xdist (``-n 2 --dist loadfile``, pyproject.toml) each worker takes the next whole test
# file when it runs short: the longest files go first, so that none of them starts last while the
# other worker idles. The service tests come late in either order: their worlds build meanwhile.
# Ranked by the files' total durations in a whole run (29 November 2026, --durations).
LONGEST_FIRST = (
    "test_foreign_world.py",
    "test_no_silent_failure.py",
    "test_personal_data.py",
    "test_notebooks.py",
    "test_policy_cli.py",
    "test_refit_and_choice.py",
    "test_import_kill.py",
    "test_registry.py",
    "test_import_parquet_split.py",
    "test_online_write.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


EARLY_WORLDS = "early-worlds"


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder that every process of this run shares: the base temporary folder, or under
    pytest-xdist the controller's, which holds each worker's."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def early_worlds(request, tmp_path_factory) -> Iterator[dict[str, tuple[dict[str, str], Any]]]:
    """The slow worlds the selected tests will need (``service_world``, ``production_world``),
    started in child processes when the session starts, so that they are built while the tests
    before them run; the fixtures wait for them. Name: (environment, build).

    Each is built once per run: under pytest-xdist the first worker here starts it (under a lock,
    in the run's shared folder) and the others wait for the same build. They are stopped, and the
    production world's database and Redis data removed, when the whole run ends
    (``pytest_sessionfinish``), not when the worker that started them ends."""
    from tests.service_world import WorldBuild, open_production

    wanted = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    folder = _run_folder(tmp_path_factory) / EARLY_WORLDS
    folder.mkdir(exist_ok=True)
    started: dict[str, tuple[dict[str, str], Any]] = {}
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        for name in ("service_world", "production_world"):
            root = folder / name
            if name not in wanted:
                continue
            if (root / "env.json").exists():  # another worker started it
                started[name] = json.loads((root / "env.json").read_text()), WorldBuild.attach(root)
                continue
            if name == "service_world" and not os.environ.get("CONCORD_TEST_SERVICE_WORLD"):
                env = {"CONCORD_HOME": str(root / "home"), "CONCORD_PSEUDONYM_KEY": "service-test"}
                started[name] = env, WorldBuild(root, env)
            elif name == "production_world" and _reachable(POSTGRES_URL, REDIS_URL):
                root.mkdir()
                env, made = open_production(POSTGRES_URL, REDIS_URL, root)
                (root / "made.json").write_text(json.dumps(made))
                started[name] = env, WorldBuild(root, env, kind="foreign", cases=1500)
            else:
                continue
            (root / "env.json").write_text(json.dumps(started[name][0]))
    yield started
    for _, build in started.values():
        build.reap()  # a build this process started and another waited for: its CPU time is counted here


def pytest_sessionfinish(session: pytest.Session) -> None:
    """At the end of the run (in the pytest-xdist controller, after every worker): stop the early
    world builds nobody waited for, drop the production world's database and empty its Redis."""
    from tests.service_world import WorldBuild, close_production

    factory = getattr(session.config, "_tmp_path_factory", None)
    if os.environ.get("PYTEST_XDIST_WORKER") or factory is None:
        return
    folder = factory.getbasetemp() / EARLY_WORLDS
    for root in sorted(folder.iterdir()) if folder.is_dir() else []:
        if (root / "build.pid").exists():
            WorldBuild.attach(root).stop()
        if (root / "made.json").exists():
            close_production(json.loads((root / "made.json").read_text()))
            (root / "made.json").unlink()


@pytest.fixture(scope="session")
def service_world(early_worlds) -> str:
    """CONCORD_HOME of a small simulated world (1,000 cases, ending yesterday), imported, featurised,
    materialised, trained and promoted once per session (built from the session's start:
    ``early_worlds``); service tests copy it (``copy_world``). ``CONCORD_TEST_SERVICE_WORLD`` names
    one built before (``python -m tests.service_world``), to iterate on the service's tests
    without building it each run."""
    if os.environ.get("CONCORD_TEST_SERVICE_WORLD"):
        return os.environ["CONCORD_TEST_SERVICE_WORLD"]
    env, build = early_worlds["service_world"]
    build.wait()
    return env["CONCORD_HOME"]


@pytest.fixture(scope="session")
def production_world(postgres_server: str, redis_url: str, early_worlds, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The environment of a world not made by Concord's simulator (``tests/foreign_world.py``,
    1,500 cases) on the production profile: PostgreSQL ledger and audit, Redis online store."""
    from tests.service_world import WorldBuild, production_profile

    if "production_world" in early_worlds:
        env, build = early_worlds["production_world"]
        build.wait()
        yield env
        return
    root = tmp_path_factory.mktemp("service-production")
    with production_profile(postgres_server, redis_url, root) as env:
        WorldBuild(root, env, kind="foreign", cases=1500).wait()
        yield env


def copy_world(home: str, target) -> dict[str, str]:
    """A private copy of a world's CONCORD_HOME under ``target``; its environment."""
    import shutil

    shutil.copytree(home, target / "home", symlinks=True)
    return {"CONCORD_HOME": str(target / "home"), "CONCORD_PSEUDONYM_KEY": "service-test"}
