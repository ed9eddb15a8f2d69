"""Logged decisions for the action-effect model: every action in the ledger's events, what was known
before it, what followed it, and the probability it was chosen with.

A decision is one event row: the action taken at ``at`` (features as known one second before,
point in time, from the settlement model's FeatureService), the logging propensity when the
history records it (NaN otherwise), and the label: a settling outcome (agreement, paid,
partial_paid) in [at, at + 90 days), the action's own outcome included. Only decisions whose label
window had closed by the as-of are kept. Two events of one case in the same second share their
features: the first stands for both (Feast merges entity rows with one key and time).
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from concord import ledger
from concord.settings import Settings
from models.specs import SETTLEMENT, ModelSpec
from training import labels as label_defs
from training.dataset import ENTITY_COLUMNS, TrainingSet, fetch_values

EFFECT_SPEC = ModelSpec(name="action_effects", label="settlement", feature_service=SETTLEMENT.feature_service)
MAX_DECISIONS = 1_000_000  # an even sample of cases beyond this many decisions


@dataclass
class LoggedDecisions(TrainingSet):
    """Decisions oldest first: ``meta`` (entity columns, ``action``, ``outcome``, ``propensity``,
    ``label``) and ``values`` (float32 features, one column per name of ``features``): a
    :class:`~training.dataset.TrainingSet` with the action taken and its propensity."""

    @property
    def actions(self) -> np.ndarray:
        return self.meta["action"].astype(str).to_numpy()

    @property
    def propensity(self) -> np.ndarray:
        return self.meta["propensity"].to_numpy(dtype=np.float64, na_value=np.nan)

    def rows(self, index: np.ndarray) -> LoggedDecisions:
        return LoggedDecisions(self.meta.iloc[index].reset_index(drop=True), self.values[index], self.features)


def load_events(engine: Engine, until: dt.datetime | None = None) -> pd.DataFrame:
    """Every event (``case_pk, debtor_key, at, action, outcome, propensity``), UTC, by case and time;
    only those at or before ``until`` when given."""
    events, cases = ledger.table(ledger.Event), ledger.table(ledger.Case)
    query = select(
        events.c.case_pk, cases.c.debtor_key, events.c.at, events.c.action, events.c.outcome, events.c.propensity
    ).join(cases, cases.c.id == events.c.case_pk)
    if until is not None:
        query = query.where(events.c.at <= until)
    with engine.connect() as connection:
        frame = pd.DataFrame(
            connection.execute(query).all(), columns=["case_pk", "debtor_key", "at", "action", "outcome", "propensity"]
        )
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["propensity"] = pd.to_numeric(frame["propensity"], errors="coerce").astype(np.float64)
    for name in ("action", "outcome"):
        frame[name] = frame[name].astype("category")
    frame["debtor_key"] = frame["debtor_key"].fillna("").astype(str)
    return frame.sort_values(["case_pk", "at"], kind="stable").reset_index(drop=True)


def decision_rows(
    events: pd.DataFrame, as_of: dt.datetime, max_rows: int = MAX_DECISIONS, seed: int = 0
) -> pd.DataFrame:
    """The logged decisions whose 90-day window closed by ``as_of``, labelled, oldest first."""
    label = label_defs.SETTLEMENT
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    points = events[events["at"] + label.horizon <= stamp].copy()
    points["decision_ts"] = points["at"]
    points["label"] = label_defs.attach_labels(points, events, label).to_numpy(dtype=np.int8)
    points = label_defs.with_feature_cut(points).drop_duplicates(["case_pk", "event_timestamp"])
    if len(points) > max_rows:  # whole cases, so that a case's decisions stay together
        cases = points["case_pk"].unique()
        keep = np.random.default_rng(seed).choice(cases, int(len(cases) * max_rows / len(points)), replace=False)
        points = points[points["case_pk"].isin(keep)]
    columns = [*ENTITY_COLUMNS, "action", "outcome", "propensity", "label"]
    return points[columns].sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def logged_decisions(settings: Settings, as_of: dt.datetime, max_rows: int = MAX_DECISIONS) -> LoggedDecisions:
    """Decisions up to ``as_of`` with their point-in-time features, built in a child process (the
    join's memory ends with it) and handed over in files under ``CONCORD_HOME``."""
    settings.ensure_home()
    with tempfile.TemporaryDirectory(prefix="effects-set-", dir=settings.home) as scratch:
        folder = Path(scratch)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
            child.submit(_write_decisions, settings, as_of, max_rows, folder).result()
        meta = pd.read_parquet(folder / "meta.parquet")
        values = np.load(folder / "values.npy")
        features = json.loads((folder / "features.json").read_text(encoding="utf-8"))
    return LoggedDecisions(meta, values, features)


def _write_decisions(settings: Settings, as_of: dt.datetime, max_rows: int, folder: Path) -> None:
    from concord.db import make_engine

    engine = make_engine(settings)
    meta = decision_rows(load_events(engine), as_of, max_rows)
    engine.dispose()
    meta["debtor_key"] = meta["debtor_key"].astype("category")
    values, features = fetch_values(settings, meta, EFFECT_SPEC)
    meta["action"] = meta["action"].astype(str)
    meta["outcome"] = meta["outcome"].astype(str)
    meta.to_parquet(folder / "meta.parquet")
    np.save(folder / "values.npy", values)
    (folder / "features.json").write_text(json.dumps(features), encoding="utf-8")


def case_features(settings: Settings, rows: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The named features (float32, NaN where unknown) for entity rows ``rows`` at their times."""
    values, names = fetch_values(settings, rows, EFFECT_SPEC)
    index = {name: j for j, name in enumerate(names)}
    out = np.full((len(rows), len(features)), np.nan, dtype=np.float32)
    for j, name in enumerate(features):
        if name in index:
            out[:, j] = values[:, index[name]]
    return out
