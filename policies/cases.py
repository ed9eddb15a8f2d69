"""The engine's input for cases in the ledger at a time: features, scores, history and case facts.

``case_inputs`` gathers, point-in-time at ``as_of``: the cases open then
(``training.scoring.open_cases``), or the cases asked for; the features of ``settlement_v1``
(which spans every view both models read) from the offline store; the champions' scores; the
contact-history facts from the events known then (``policies.history``); and the case row's
court, province and product. What people need on a court list (the debtor's name and masked ID
number) is added only when asked for, and never reaches the features, the logs or an answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, bindparam, text

from concord.settings import Settings
from features.repo import SETTLEMENT_V1
from features.store.retrieval import historical_features
from policies.catalogue import Catalogue
from policies.history import contact_facts, load_events, load_resolutions
from policies.scores import ChampionScorer

ENTITY = ["case_pk", "debtor_key", "event_timestamp", "decision_ts"]


class CaseNotFound(LookupError):
    """An unknown case, or a court no case names; the message is one sentence."""


@dataclass(frozen=True)
class CaseInputs:
    """One row per case: ``frame`` has every fact the engine reads; ``features`` the model inputs
    (same index), for the reasons behind the scores."""

    frame: pd.DataFrame
    features: pd.DataFrame
    as_of: dt.datetime


def case_rows(
    engine: Engine, case_pks: Sequence[int] | None = None, *, court: str | None = None, with_names: bool = False
) -> pd.DataFrame:
    """Ledger facts of cases: ``case_pk, case_id, creditor, debtor_key, court, province, product``
    (and ``debtor_name, id_masked`` when ``with_names``), of the given cases or court (all when
    neither is given)."""
    names = ", c.debtor_name, d.id_masked" if with_names else ""
    sql = (
        f"SELECT c.id AS case_pk, c.case_id, cr.name AS creditor, COALESCE(c.debtor_key, '') AS debtor_key, "
        f"c.court, c.province, c.product{names} FROM cases c JOIN creditors cr ON cr.id = c.creditor_id "
        f"LEFT JOIN debtors d ON d.debtor_key = c.debtor_key WHERE 1 = 1"
    )
    params: dict[str, object] = {}
    if case_pks is not None:
        sql += " AND c.id IN :pks"
        params["pks"] = [int(pk) for pk in case_pks]
    if court is not None:
        sql += " AND c.court = :court"
        params["court"] = court
    query = text(sql + " ORDER BY c.id")
    if case_pks is not None:
        query = query.bindparams(bindparam("pks", expanding=True))
    with engine.connect() as connection:
        return pd.read_sql_query(query, connection, params=params)


def known_courts(engine: Engine) -> list[str]:
    """Courts named by at least one case."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT DISTINCT court FROM cases WHERE court IS NOT NULL ORDER BY court"))
        return [str(row[0]) for row in rows]


def _utc(moment: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def case_inputs(
    settings: Settings,
    engine: Engine,
    as_of: dt.datetime,
    catalogue: Catalogue,
    scorer: ChampionScorer,
    *,
    case_pks: Sequence[int] | None = None,
    court: str | None = None,
    with_names: bool = False,
) -> CaseInputs:
    """The engine's input at ``as_of``: the cases open then (or exactly ``case_pks``, open or
    not), optionally only those of ``court``."""
    from training.labels import with_feature_cut
    from training.scoring import open_cases

    stamp = _utc(as_of)
    rows = case_rows(engine, case_pks, court=court, with_names=with_names)
    if case_pks is None:
        open_now = open_cases(engine, stamp.to_pydatetime())[["case_pk"]]
        rows = rows.merge(open_now, on="case_pk", how="inner")
    rows = with_feature_cut(rows.assign(decision_ts=stamp)).reset_index(drop=True)
    features = historical_features(settings, rows[ENTITY], SETTLEMENT_V1)
    features = features.drop(columns=[c for c in features.columns if c in rows.columns and c not in ENTITY])
    scores = scorer.score(features)
    pks = rows["case_pk"].tolist()
    debtors = sorted(set(rows["debtor_key"]) - {""})
    events = load_events(engine, stamp.to_pydatetime(), case_pks=pks, debtor_keys=debtors)
    history = contact_facts(rows, events, catalogue, load_resolutions(engine, stamp.to_pydatetime(), pks))
    feature_only = features.drop(columns=ENTITY)
    frame = pd.concat([rows, feature_only, scores, history], axis=1)
    return CaseInputs(frame=frame, features=feature_only, as_of=stamp.to_pydatetime())


def case_pk_of(engine: Engine, case_id: str, creditor: str | None = None) -> int:
    """The ledger key of the creditor's ``case_id``.

    Raises:
        CaseNotFound: no such case, or several creditors use the id and none was named.
    """
    from features.profile import ProfileError, find_case

    try:
        return int(find_case(engine, case_id, creditor)["case_pk"])
    except ProfileError as error:
        raise CaseNotFound(str(error).rstrip(".")) from None
