"""What a service worker holds while it runs: engines on the ledger and the service's store, the
feature store, the policy, and the champions (fast path and full models), re-loaded when asked or
when the ``champion`` alias moves.

Built once per worker (``Runtime.start``); no migrations here (``concord serve`` runs them before
the workers start, so that workers never race on Alembic). A worker whose schema is behind, or
that finds no champion, stays up and says why on ``/readyz`` and with 503 on each request.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from typing import Any

from concord.settings import Settings

log = logging.getLogger("concord.service")
MODELS = ("reachability", "settlement")


class NotReady(RuntimeError):
    """The service cannot answer yet (no champion, schema behind): one sentence saying what to do."""


@dataclass(frozen=True)
class Champions:
    """One consistent set of champion models: fast one-row scorers, the full estimators (batch
    scoring), and their registered versions."""

    fast: dict[str, Any]
    scorer: Any  # policies.scores.ChampionScorer
    versions: dict[str, str]


def _schema_behind(engine: Any) -> str | None:
    """A sentence when ``engine``'s database is not at the migrations' head, else None."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from concord.db import alembic_config

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        return f"the database {where} is at schema {current or 'none'}, not {head}: run `concord db upgrade`"
    return None


class Runtime:
    """The loaded state of one worker. Thread-safe: requests read ``champions`` (swapped whole on
    reload), the background thread re-loads and syncs events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger: Any = None
        self.audit: Any = None
        self.store: Any = None
        self.online: Any = None  # serving.online.OnlineReader of settlement_v1
        self.policy_engine: Any = None
        self.champions: Champions | None = None
        self.problem: str | None = "starting"
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checkpointers: list[Any] = []
        self._client: Any = None  # MLflow's, made on first use (_registry)

    def start(self) -> Runtime:
        """Open the engines and the feature store, load the policy and the champions."""
        from concord.audit import audit_engine
        from concord.db import Checkpointer, make_engine
        from features.repo import SETTLEMENT_V1
        from features.store.config import feature_store
        from features.store.retrieval import feature_service
        from policies.config import load_policy
        from policies.engine import PolicyEngine
        from serving import probe
        from serving.online import OnlineReader

        self.ledger = make_engine(self.settings, migrate=False)
        self.audit = audit_engine(self.settings, migrate=False)
        # SQLite stores: WAL checkpoints in a thread of their own, not inside a request's commit
        started = (Checkpointer.start_for(e, span=probe.span) for e in (self.audit, self.ledger))
        self._checkpointers = [c for c in started if c is not None]
        self.policy_engine = PolicyEngine(load_policy(self.settings.policy_dir))
        self.store = feature_store(self.settings, serving=True)
        feature_service(self.store, SETTLEMENT_V1)  # the registry read once, before the first request
        self.online = OnlineReader(self.store, SETTLEMENT_V1)
        if not self.online.supported():
            log.warning(
                "%s has on-demand views the fast reader does not run: Feast's own read serves it", SETTLEMENT_V1
            )
        problems = [p for p in (_schema_behind(self.ledger), _schema_behind(self.audit)) if p]
        self.problem = problems[0] if problems else None
        if self.problem is None:
            self.reload(force=True)
        if self.problem is not None:
            log.warning("not ready: %s", self.problem)
        gc.collect()  # before the first request: what start-up left behind
        gc.freeze()
        return self

    def ready(self) -> bool:
        """Whether requests can be answered."""
        return self.problem is None and self.champions is not None

    def require(self) -> Champions:
        """The champions, or :class:`NotReady` naming what is missing."""
        champions = self.champions
        if self.problem is not None or champions is None:
            raise NotReady(f"the service is not ready: {self.problem or 'no champion models loaded'}")
        return champions

    def _registry(self) -> Any:
        """The MLflow client, configured once: each configuration reads and sets the experiment, and
        the poll every CONCORD_MODEL_POLL_SECONDS took 17 ms of CPU from the worker's requests
        (6.4 ms with the client kept)."""
        if self._client is None:
            from training import registry

            self._client = registry.configure(self.settings)
        return self._client

    def registered_versions(self) -> dict[str, str | None]:
        """The version each model's ``champion`` alias names in MLflow now (None: no champion)."""
        from training import registry

        client = self._registry()
        out: dict[str, str | None] = {}
        for model in MODELS:
            version = registry.version_by_alias(client, model, registry.CHAMPION)
            out[model] = None if version is None else str(version.version)
        return out

    def reload(self, *, force: bool = False) -> bool:
        """Load the champions again when an alias moved (always with ``force``); True when a new set
        was loaded. A failure leaves the previous set serving and is logged in one line."""
        from models.fast_path import FastOdds
        from policies.scores import ChampionScorer
        from training import registry

        with self._reload_lock:
            try:
                wanted = self.registered_versions()
                missing = [m for m, v in wanted.items() if v is None]
                if missing:
                    self.problem = (
                        f"{', '.join(registry.registered_name(m) for m in missing)} has no champion "
                        "yet; run `concord train` first"
                    )
                    return False
                current = self.champions.versions if self.champions else None
                effects = self._action_effects(client_versions=current)
                if not force and current == {**wanted, **effects[0]}:
                    return False
                models = {m: registry.load_version(m, str(v)) for m, v in wanted.items()}
                versions = {m: str(v) for m, v in wanted.items()}
                loaded = Champions(
                    fast={m: FastOdds(models[m]) for m in MODELS},
                    scorer=ChampionScorer(models, versions),
                    versions={**versions, **effects[0]},
                )
                if effects[1] is not None:
                    self.policy_engine = effects[1]
            except Exception as error:  # MLflow unreachable, artifact missing: keep serving what we have
                log.error("champion models not (re)loaded: %s: %s", type(error).__name__, error)
                if self.champions is None:
                    self.problem = f"the champion models could not be loaded ({type(error).__name__})"
                return False
            self.champions = loaded
            # The models' objects live as long as the worker: out of the collector's sight (about
            # 445,000 objects), a full collection took 3.5-5.5 ms of CPU instead of 110-130 ms,
            # which had stalled every request of the worker for 0.25-1.1 s on the busy machine.
            # No collection first, so that no request waits behind one; cycles the previous set
            # leaves stay frozen (one set per reload, rare).
            gc.freeze()
            if self.problem and "champion" in self.problem:
                self.problem = None
            log.info("champions loaded: %s", ", ".join(f"{m} v{v}" for m, v in versions.items()))
            return True

    def _action_effects(self, client_versions: dict[str, str] | None) -> tuple[dict[str, str], Any]:
        """The action-effect champion's version ({} without one) and, when it is not the one in use,
        a policy engine valuing actions with it (None: keep the engine). Without a champion the
        engine values actions with the documented priors."""
        from policies.engine import PolicyEngine
        from policies.learned_value import MODEL_NAME, LearnedValue
        from training import registry

        client = self._registry()
        version = registry.version_by_alias(client, MODEL_NAME, registry.CHAMPION)
        if version is None:
            return {}, None
        found = {MODEL_NAME: str(version.version)}
        if client_versions is not None and client_versions.get(MODEL_NAME) == found[MODEL_NAME]:
            return found, None
        policy = self.policy_engine.policy
        return found, PolicyEngine(policy, LearnedValue.champion(self.settings, policy.effects))

    def run_background(self) -> None:
        """Start the thread that follows the champion alias and imports acknowledged events into
        the ledger, each at its own interval."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._background, name="concord-background", daemon=True)
        self._thread.start()

    def _background(self) -> None:
        from serving import probe
        from serving.events import sync_events

        poll, sync = self.settings.model_poll_seconds, self.settings.event_sync_seconds
        waited = 0
        while not self._stop.wait(1.0):
            waited += 1
            if self.problem is None and waited % sync == 0:
                try:
                    with probe.span("event_sync"):
                        sync_events(self.settings, self.ledger, self.audit)
                except Exception as error:  # an import holding the lock, a rejected row: try again later
                    log.warning("events not yet imported into the ledger: %s: %s", type(error).__name__, error)
            if waited % poll == 0:
                with probe.span("model_poll"):
                    self.reload()

    def stop(self) -> None:
        """Stop the background thread and close the engines."""
        self._stop.set()
        for checkpointer in self._checkpointers:
            checkpointer.stop()
        for engine in (self.ledger, self.audit):
            if engine is not None:
                engine.dispose()


_current: Runtime | None = None


def current() -> Runtime | None:
    """The runtime of this worker, once its service has started (the gate reads keys through it)."""
    return _current


def set_current(runtime: Runtime | None) -> None:
    """Make ``runtime`` this worker's runtime."""
    global _current
    _current = runtime
