"""Shared fixtures: an isolated CONCORD_HOME per test, and the real servers of the production
profile (PostgreSQL, Redis), which skip when unreachable unless CONCORD_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from concord.settings import Settings

REQUIRE_SERVICES = os.environ.get("CONCORD_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get("CONCORD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONCORD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


@pytest.fixture(scope="session")
def service_world(tmp_path_factory) -> str:
    """CONCORD_HOME of a small simulated world (1,000 cases, ending yesterday), imported, featurised,
    materialised, trained and promoted once per session; service tests copy it (``copy_world``).
    ``CONCORD_TEST_SERVICE_WORLD`` names one built before (``python -m tests.service_world``), to
    iterate on the service's tests without building it each run."""
    from tests.service_world import build_world

    if os.environ.get("CONCORD_TEST_SERVICE_WORLD"):
        return os.environ["CONCORD_TEST_SERVICE_WORLD"]
    root = tmp_path_factory.mktemp("service-world")
    build_world(root, {"CONCORD_HOME": str(root / "home"), "CONCORD_PSEUDONYM_KEY": "service-test"})
    return str(root / "home")


def copy_world(home: str, target) -> dict[str, str]:
    """A private copy of a world's CONCORD_HOME under ``target``; its environment."""
    import shutil

    shutil.copytree(home, target / "home", symlinks=True)
    return {"CONCORD_HOME": str(target / "home"), "CONCORD_PSEUDONYM_KEY": "service-test"}
