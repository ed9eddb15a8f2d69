"""One settings object for the whole product, read from ``CONCORD_*`` environment variables.

All state lives under ``CONCORD_HOME`` (default ``./var``): the SQLite ledger, the pseudonym
key, the feature store's files, MLflow's runs. Nothing is read or created at import time.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _whole(env: dict[str, str] | os._Environ[str], name: str, default: int | None) -> int | None:
    """A positive whole number from ``env[name]``, or ``default`` when unset or empty."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number, not {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where Concord keeps its state and which servers it talks to.

    Attributes:
        home: directory for all state (``CONCORD_HOME``).
        database_url: SQLAlchemy URL of the case ledger (``CONCORD_DATABASE_URL``); default a
            SQLite file under ``home``. PostgreSQL URLs name their driver:
            ``postgresql+psycopg://user@host:5432/db``.
        audit_url: SQLAlchemy URL of the service's store: API keys, the hash-chained audit trail
            and the decisions (``CONCORD_AUDIT_URL``). Default: the ledger itself on PostgreSQL;
            beside a SQLite ledger its own SQLite file ``home/audit.db`` (WAL), so that an audit
            write never waits behind an import holding the ledger's write lock.
        redis_url: Redis for the production online store (``CONCORD_REDIS_URL``), or None.
        mlflow_tracking_uri: MLflow backend store (``CONCORD_MLFLOW_TRACKING_URI``); default a
            SQLite file under ``home``.
        require_services: when true (``CONCORD_REQUIRE_SERVICES=1``) tests that need PostgreSQL
            or Redis fail instead of skipping.
        progress_threshold: row count above which imports show a progress bar.
        offline_memory_limit: memory the offline store's DuckDB engine may use for a
            point-in-time join before it spills to ``home/features/duckdb-spill``
            (``CONCORD_OFFLINE_MEMORY_LIMIT``, DuckDB's syntax: ``2GB``, ``512MB``).
        offline_threads: DuckDB threads (``CONCORD_OFFLINE_THREADS``); default one per CPU.
        synonyms_file: a YAML file of spellings of enum values and headers
            (``CONCORD_SYNONYMS``), added to those shipped in ``ingestion/synonyms.yaml``.
        tuning_trials: most settings the hyperparameter search tries per model
            (``CONCORD_TUNING_TRIALS``, default 30).
        tuning_seconds: most seconds the search spends per model (``CONCORD_TUNING_SECONDS``,
            default 600); whichever of the two budgets ends first ends the search.
        policy_dir: the policy folder the service decides by (``CONCORD_POLICY_DIR``); default
            the packaged one.
        model_poll_seconds: how often the service asks MLflow whether the ``champion`` alias moved
            (``CONCORD_MODEL_POLL_SECONDS``, default 30).
        event_sync_seconds: how often the service imports the events it acknowledged into the
            ledger (``CONCORD_EVENT_SYNC_SECONDS``, default 5).
    """

    home: Path
    database_url: str
    audit_url: str = ""
    redis_url: str | None = None
    mlflow_tracking_uri: str | None = None
    require_services: bool = False
    progress_threshold: int = 5000
    offline_memory_limit: str = "2GB"
    offline_threads: int | None = None
    synonyms_file: Path | None = None
    tuning_trials: int = 30
    tuning_seconds: int = 600
    policy_dir: Path | None = None
    model_poll_seconds: int = 30
    event_sync_seconds: int = 5
    _pseudonym_key: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``CONCORD_*`` variables (``os.environ`` unless given)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("CONCORD_HOME") or "./var").expanduser().absolute()
        database_url = env.get("CONCORD_DATABASE_URL") or f"sqlite:///{home / 'concord.db'}"
        audit_url = env.get("CONCORD_AUDIT_URL") or (
            f"sqlite:///{home / 'audit.db'}" if database_url.startswith("sqlite") else database_url
        )
        raw_key = env.get("CONCORD_PSEUDONYM_KEY")
        synonyms = env.get("CONCORD_SYNONYMS")
        policy_dir = env.get("CONCORD_POLICY_DIR")
        return cls(
            home=home,
            database_url=database_url,
            audit_url=audit_url,
            redis_url=env.get("CONCORD_REDIS_URL") or None,
            mlflow_tracking_uri=env.get("CONCORD_MLFLOW_TRACKING_URI") or None,
            require_services=_flag(env.get("CONCORD_REQUIRE_SERVICES")),
            progress_threshold=_whole(env, "CONCORD_PROGRESS_THRESHOLD", 5000) or 5000,
            offline_memory_limit=env.get("CONCORD_OFFLINE_MEMORY_LIMIT") or "2GB",
            offline_threads=_whole(env, "CONCORD_OFFLINE_THREADS", None),
            synonyms_file=Path(synonyms).expanduser().absolute() if synonyms else None,
            tuning_trials=_whole(env, "CONCORD_TUNING_TRIALS", 30) or 30,
            tuning_seconds=_whole(env, "CONCORD_TUNING_SECONDS", 600) or 600,
            policy_dir=Path(policy_dir).expanduser().absolute() if policy_dir else None,
            model_poll_seconds=_whole(env, "CONCORD_MODEL_POLL_SECONDS", 30) or 30,
            event_sync_seconds=_whole(env, "CONCORD_EVENT_SYNC_SECONDS", 5) or 5,
            _pseudonym_key=raw_key.encode("utf-8") if raw_key else None,
        )

    @property
    def key_file(self) -> Path:
        """File that keeps the generated pseudonym key when none is configured."""
        return self.home / "pseudonym.key"

    @property
    def configured_pseudonym_key(self) -> bool:
        """Whether the pseudonym key comes from ``CONCORD_PSEUDONYM_KEY`` rather than ``key_file``."""
        return self._pseudonym_key is not None

    def ensure_home(self) -> Path:
        """Create the state directory if needed (readable by its owner only) and return it."""
        if not self.home.is_dir():
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.home, 0o700)  # mkdir's mode passes through the umask
        return self.home

    def pseudonym_key(self) -> bytes:
        """The secret for keyed pseudonyms.

        ``CONCORD_PSEUDONYM_KEY`` when set; otherwise a random key generated once and kept in
        ``home/pseudonym.key`` with permissions 0600, so that pseudonyms stay stable.
        """
        if self._pseudonym_key is not None:
            return self._pseudonym_key
        path = self.key_file
        if not path.exists():
            self.ensure_home()
            key = secrets.token_hex(32)
            # O_EXCL: two processes starting at once must not each write their own key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(key)
        return path.read_text().strip().encode("utf-8")


def get_settings() -> Settings:
    """Settings for the current process environment."""
    return Settings.from_env()
