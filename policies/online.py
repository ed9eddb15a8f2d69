"""The engine's input for cases now, from the online store: the service's batch path (court lists,
assignment, a batch of recommendations), beside ``policies.cases`` which reads the offline store
point-in-time for the commands.

One ``get_online_features`` call of ``settlement_v1`` (its views span every feature both models
read) for all the cases, the champions' scores, the contact history from the ledger's events plus
any the caller adds (events the service acknowledged and the ledger has not yet imported), and the
case rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from concord.settings import Settings
from features.repo import SETTLEMENT_V1
from features.store.retrieval import online_features
from policies.cases import CaseInputs, case_rows
from policies.catalogue import Catalogue
from policies.history import contact_facts, load_events, load_resolutions
from policies.scores import ChampionScorer

ENTITY_KEYS = ("case_pk", "debtor_key", "decision_ts")


def online_frame(settings: Settings, store: Any, rows: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Online features of ``rows`` (``case_pk``, ``debtor_key``) at ``as_of``: one row per case, same
    order, feature columns only; a case never materialised has every feature missing."""
    entities = [
        {"case_pk": int(pk), "debtor_key": str(key or ""), "decision_ts": as_of}
        for pk, key in zip(rows["case_pk"], rows["debtor_key"], strict=True)
    ]
    if not entities:
        return pd.DataFrame(index=rows.index)
    values = online_features(settings, entities, SETTLEMENT_V1, store=store)
    frame = pd.DataFrame({k: v for k, v in values.items() if k not in ENTITY_KEYS}, index=rows.index)
    # Feast returns None for an unknown value: numeric columns become float with NaN
    for name in frame.columns:
        if frame[name].dtype == object and frame[name].map(_numeric_or_none).all():
            frame[name] = frame[name].astype(np.float64)
    return frame


def _numeric_or_none(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, np.integer, np.floating, bool))


def extra_events_frame(extra: Sequence[Any], rows: pd.DataFrame) -> pd.DataFrame:
    """Events the ledger lacks (``PastEvent``-like: ``case_pk``, ``at_s``, ``action``, ``outcome``) in
    the shape :func:`policies.history.load_events` returns, the debtor taken from ``rows``."""
    debtors = dict(zip(rows["case_pk"].astype(int), rows["debtor_key"].fillna("").astype(str), strict=True))
    return pd.DataFrame(
        {
            "case_pk": [int(e.case_pk) for e in extra],
            "debtor_key": [debtors.get(int(e.case_pk), "") for e in extra],
            "at": pd.to_datetime([e.at_s for e in extra], unit="s", utc=True),
            "action": [e.action for e in extra],
            "outcome": [e.outcome for e in extra],
        }
    )


def online_case_inputs(
    settings: Settings,
    engine: Engine,
    store: Any,
    scorer: ChampionScorer,
    catalogue: Catalogue,
    as_of: dt.datetime,
    *,
    case_pks: Sequence[int] | None = None,
    court: str | None = None,
    with_names: bool = False,
    extra_events: Sequence[Any] = (),
) -> CaseInputs:
    """Features, scores, history facts and case rows of the given cases (or of a court) at ``as_of``."""
    rows = case_rows(engine, case_pks, court=court, with_names=with_names).reset_index(drop=True)
    stamp = pd.Timestamp(as_of).tz_convert("UTC") if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of, tz="UTC")
    rows["decision_ts"] = stamp
    features = online_frame(settings, store, rows, stamp.to_pydatetime())
    scores = scorer.score(features) if len(rows) else pd.DataFrame(index=rows.index)
    pks = rows["case_pk"].astype(int).tolist()
    debtors = sorted(set(rows["debtor_key"].fillna("")) - {""})
    events = load_events(engine, stamp.to_pydatetime(), case_pks=pks, debtor_keys=debtors)
    if extra_events:
        added = extra_events_frame(extra_events, rows)
        events = pd.concat([events, added[added["at"] <= stamp]], ignore_index=True)
    history = contact_facts(rows, events, catalogue, load_resolutions(engine, stamp.to_pydatetime(), pks))
    frame = pd.concat(
        [rows, features.drop(columns=[c for c in features.columns if c in rows.columns]), scores, history], axis=1
    )
    return CaseInputs(frame=frame, features=features, as_of=stamp.to_pydatetime())
