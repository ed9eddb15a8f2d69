"""Point-in-time training sets: labelled decisions in time order and a model's features.

Decisions and labels come from the ledger's events (:mod:`training.labels`), features from
``get_historical_features`` of the model's FeatureService, fetched in batches of neighbouring
cases and written straight into one float32 matrix (missing = NaN): at a million cases the
three million decisions of a model take 1.2 GB, not the several copies of a float64 frame. The
fetching runs in a child process, so that what the join needed is given back when it ends.
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
from sqlalchemy import Engine

from concord.settings import Settings
from models.specs import ModelSpec
from training import labels as label_defs

ENTITY_COLUMNS = ("case_pk", "debtor_key", "event_timestamp", "decision_ts")
META_COLUMNS = (*ENTITY_COLUMNS, "creditor", "case_id", "creditor_type", "label")  # never model inputs
KEPT_COLUMNS = (*ENTITY_COLUMNS, "creditor_type", "label")  # what a training set keeps of each decision
FETCH_ROWS = 200_000  # decisions per feature fetch (neighbouring cases: the join stays small)


@dataclass
class TrainingSet:
    """Labelled decisions, oldest first, with their features.

    ``meta`` holds ``case_pk``, ``debtor_key``, ``event_timestamp`` (features as known then),
    ``decision_ts``, ``creditor_type`` and ``label`` (0/1); ``values`` the features, float32,
    one row per decision and one column per name in ``features``, NaN where unknown.
    """

    meta: pd.DataFrame
    values: np.ndarray
    features: list[str]

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def labels(self) -> np.ndarray:
        """The 0/1 labels."""
        return self.meta["label"].to_numpy(dtype=np.int8)

    @property
    def times(self) -> pd.Series:
        """When each decision's features were known (UTC), oldest first."""
        return self.meta["event_timestamp"]

    def frame(self, rows: np.ndarray | slice | None = None) -> pd.DataFrame:
        """Features and meta columns of ``rows`` (all by default) as one DataFrame."""
        chosen = slice(None) if rows is None else rows
        features = pd.DataFrame(self.values[chosen], columns=self.features)
        meta = self.meta.iloc[chosen].reset_index(drop=True)
        return pd.concat([meta, features], axis=1)

    def frame_of(self, rows: np.ndarray) -> pd.DataFrame:
        """The features of ``rows`` alone, as a DataFrame (a copy of those rows only)."""
        return pd.DataFrame(self.values[rows], columns=self.features)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, spec: ModelSpec) -> TrainingSet:
        """A training set from a DataFrame of decisions (``event_timestamp``, ``label``, features)."""
        ordered = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
        features = feature_columns(ordered, spec)
        meta = ordered[[c for c in KEPT_COLUMNS if c in ordered.columns]].copy()
        if "creditor_type" not in meta:
            meta["creditor_type"] = "all"
        values = ordered[features].to_numpy(dtype=np.float32, na_value=np.nan)
        return cls(meta, np.asfortranarray(values), features)


def feature_columns(frame: pd.DataFrame, spec: ModelSpec) -> list[str]:
    """Model inputs: the service's numeric and boolean features, minus meta and excluded ones
    and the stored epoch timestamps (``*_ts``): every time after training lies beyond the times
    training saw, so models take their ages (``days_since_*``, ``days_past_due``) instead."""
    return [
        column
        for column in frame.columns
        if _is_input(column, spec)
        and (pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]))
    ]


def _is_input(name: str, spec: ModelSpec) -> bool:
    return name not in META_COLUMNS and name not in spec.exclude and not name.endswith("_ts")


def service_features(settings: Settings, spec: ModelSpec) -> list[str]:
    """The model inputs its FeatureService declares (numeric and boolean), in its order."""
    from feast.types import Bool, Float32, Float64, Int32, Int64

    from features.store.config import feature_store
    from features.store.retrieval import feature_service

    service = feature_service(feature_store(settings), spec.feature_service)
    names: list[str] = []
    for projection in service.feature_view_projections:
        for field in projection.features:
            if (
                field.dtype in (Bool, Float32, Float64, Int32, Int64)
                and _is_input(field.name, spec)
                and field.name not in names
            ):
                names.append(field.name)
    return names


def decisions(
    engine: Engine, spec: ModelSpec, as_of: dt.datetime, per_case: float = 3.0, seed: int = 0
) -> pd.DataFrame:
    """Labelled decision points up to ``as_of`` (entity columns, creditor, case id, creditor
    type, label), oldest first."""
    label = label_defs.LABELS[spec.label]
    cases, events = label_defs.load_history(engine)
    points = label_defs.decision_times(cases, events, label, as_of, per_case=per_case, seed=seed)
    points["label"] = label_defs.attach_labels(points, events, label).astype(np.int8)
    del cases, events
    # Feast merges entity rows sharing keys and timestamp; one decision per case and instant.
    points = points.drop_duplicates(["case_pk", "event_timestamp"])
    points["debtor_key"] = points["debtor_key"].astype("category")
    return points.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def training_set(
    settings: Settings, engine: Engine, spec: ModelSpec, as_of: dt.datetime, per_case: float = 3.0, seed: int = 0
) -> TrainingSet:
    """Decision points with labels and the model's features, point-in-time correct (of each
    decision: ``KEPT_COLUMNS`` and the features).

    The work runs in a child process that hands the result over in files under
    ``CONCORD_HOME``: the memory the point-in-time join takes (DuckDB's buffers, Arrow's pools,
    Feast's frames; gigabytes at a million cases, kept by their allocators once used) ends with
    the child, and training starts from the matrix alone. ``engine`` is the ledger's; the child
    opens its own from the settings."""
    settings.ensure_home()
    with tempfile.TemporaryDirectory(prefix="training-set-", dir=settings.home) as scratch:
        folder = Path(scratch)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
            child.submit(write_training_set, settings, spec, as_of, per_case, seed, folder).result()
        meta = pd.read_parquet(folder / "meta.parquet")
        values = np.load(folder / "values.npy")
        features = json.loads((folder / "features.json").read_text(encoding="utf-8"))
    return TrainingSet(meta, values, features)


def write_training_set(
    settings: Settings, spec: ModelSpec, as_of: dt.datetime, per_case: float, seed: int, folder: Path
) -> None:
    """Build the training set (see :func:`training_set`) into ``folder``: ``meta.parquet``,
    ``values.npy`` (float32, column-major) and ``features.json``."""
    from concord.db import make_engine

    engine = make_engine(settings)
    meta = decisions(engine, spec, as_of, per_case, seed)[list(KEPT_COLUMNS)]
    engine.dispose()
    meta["creditor_type"] = meta["creditor_type"].astype("category")
    values, features = fetch_values(settings, meta, spec)
    meta.to_parquet(folder / "meta.parquet")
    np.save(folder / "values.npy", values)
    (folder / "features.json").write_text(json.dumps(features), encoding="utf-8")


def fetch_values(settings: Settings, meta: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, list[str]]:
    """The features of ``spec``'s FeatureService for each row of ``meta`` (entity columns), point
    in time: a float32 column-major matrix (NaN where unknown) and the feature names. Fetched in
    batches of neighbouring cases."""
    from features.store.config import feature_store
    from features.store.retrieval import historical_features

    features = service_features(settings, spec)
    values = np.full((len(meta), len(features)), np.nan, dtype=np.float32, order="F")
    store = feature_store(settings)
    by_case = np.argsort(meta["case_pk"].to_numpy(), kind="stable")
    for start in range(0, len(by_case), FETCH_ROWS):
        rows = np.sort(by_case[start : start + FETCH_ROWS])
        entities = meta.iloc[rows][list(ENTITY_COLUMNS)].copy()
        entities["debtor_key"] = entities["debtor_key"].astype(object)  # the categories end here: Feast takes text
        part = historical_features(settings, entities, spec.feature_service, store=store)
        values[rows] = part[features].to_numpy(dtype=np.float32, na_value=np.nan)
    return values, features


def training_frame(
    settings: Settings, engine: Engine, spec: ModelSpec, as_of: dt.datetime, per_case: float = 3.0, seed: int = 0
) -> pd.DataFrame:
    """The training set as one DataFrame (for notebooks and small worlds)."""
    return training_set(settings, engine, spec, as_of, per_case, seed).frame()
