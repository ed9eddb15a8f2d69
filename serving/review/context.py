"""What the review page works with, made once per process: settings, the ledger and the service
store's engines, the policy, the champions' figures, fitted models by version, the feature store.

The service hands over its own (``ReviewContext(settings, ledger=..., audit=..., policy=...)`` in
its ``on_startup``); standalone, the page makes them on first use. Nothing runs migrations here:
``concord serve`` (or ``concord db upgrade``) has done that before any worker starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

from concord.settings import Settings
from serving.review.figures import ChampionFigures

T = TypeVar("T")


class ReviewContext:
    """Lazily made, shared resources of the page (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Engine | None = None,
        audit: Engine | None = None,
        policy: Any = None,
        feature_store: Any = None,
    ) -> None:
        self.settings = settings
        self._ledger, self._audit, self._policy, self._store = ledger, audit, policy, feature_store
        self._own: list[Engine] = []  # engines made here (the service's are the service's to close)
        self._models: dict[tuple[str, str], Any] = {}
        self._cache: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.RLock()
        self.figures = ChampionFigures(settings)

    @property
    def ledger(self) -> Engine:
        with self._lock:
            if self._ledger is None:
                from concord.db import make_engine

                self._ledger = make_engine(self.settings, migrate=False)
                self._own.append(self._ledger)
            return self._ledger

    @property
    def audit(self) -> Engine:
        with self._lock:
            if self._audit is None:
                from concord.audit import audit_engine

                self._audit = audit_engine(self.settings, migrate=False)
                self._own.append(self._audit)
            return self._audit

    @property
    def policy(self) -> Any:
        with self._lock:
            if self._policy is None:
                from policies.config import load_policy

                self._policy = load_policy(self.settings.policy_dir)
            return self._policy

    @property
    def feature_store(self) -> Any:
        with self._lock:
            if self._store is None:
                from features.store.config import feature_store

                self._store = feature_store(self.settings)
            return self._store

    def model(self, name: str, version: str | None) -> tuple[Any, str]:
        """A fitted model by registered version (the current champion when ``version`` is None or
        unknown), with its version; kept once loaded. Raises LookupError without a champion."""
        from training import registry

        wanted = str(version) if version and version != "unregistered" else None
        with self._lock:
            if wanted and (name, wanted) in self._models:
                return self._models[(name, wanted)], wanted
            client = registry.configure(self.settings)
            if wanted is None:
                champion = registry.version_by_alias(client, name, registry.CHAMPION)
                if champion is None:
                    raise LookupError(f"{registry.registered_name(name)} has no champion yet; run `concord train`")
                wanted = str(champion.version)
                if (name, wanted) in self._models:
                    return self._models[(name, wanted)], wanted
            self._models[(name, wanted)] = registry.load_version(name, wanted)
            return self._models[(name, wanted)], wanted

    def cached(self, key: Any, seconds: float, make: Callable[[], T]) -> T:
        """``make()``, kept for ``seconds``: figures that scan the whole ledger (the funnel, the
        open disputes) are computed at most that often, whoever asks."""
        now = time.monotonic()
        with self._lock:
            found = self._cache.get(key)
        if found is not None and found[0] > now:
            return found[1]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._cache[key] = (now + seconds, value)
        return value

    def forget(self, prefix: str) -> None:
        """Drop the cached figures whose key starts with ``prefix`` (after a write changed them)."""
        with self._lock:
            for key in [k for k in self._cache if isinstance(k, tuple) and k and k[0] == prefix]:
                del self._cache[key]

    def dispose(self) -> None:
        """Close the engines this context made."""
        for engine in self._own:
            engine.dispose()
