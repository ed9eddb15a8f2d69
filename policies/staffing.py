"""Mediators as the ledger knows them at a time: capacity, fit, current load, track record; and
the assignments Concord records.

A case's current mediator is its latest Concord assignment, else the mediator who last acted on
it (an event whose actor is not ``system``). A mediator's load is the number of open cases they
hold. Their track record, for the settle-rate factor of assignment, is the number of distinct
cases they acted on and of those that settled (an agreement or payment outcome of their own
event), from the events known at the time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal

import pandas as pd
from sqlalchemy import Engine, func, insert, select

from concord import ledger
from concord.vocabulary import SETTLED_OUTCOMES

SYSTEM_ACTOR = "system"


def current_mediators(engine: Engine, as_of: dt.datetime, case_pks: Sequence[int]) -> pd.Series:
    """Each case's current mediator id at ``as_of`` ('' when none), indexed by case_pk."""
    events, assignments = ledger.table(ledger.Event), ledger.table(ledger.Assignment)
    known = func.coalesce(events.c.received_at, events.c.at) <= as_of
    with engine.connect() as connection:
        acted = pd.DataFrame(
            connection.execute(
                select(events.c.case_pk, events.c.at, events.c.actor).where(
                    events.c.actor != SYSTEM_ACTOR, events.c.at <= as_of, known
                )
            ).all(),
            columns=["case_pk", "at", "actor"],
        )
        given = pd.DataFrame(
            connection.execute(
                select(assignments.c.case_pk, assignments.c.id, assignments.c.mediator_id).where(
                    assignments.c.assigned_at <= as_of
                )
            ).all(),
            columns=["case_pk", "id", "mediator_id"],
        )
    last_actor = acted.sort_values(["case_pk", "at"], kind="stable").groupby("case_pk")["actor"].last()
    last_given = given.sort_values(["case_pk", "id"]).groupby("case_pk")["mediator_id"].last()
    current = last_given.combine_first(last_actor)
    index = pd.Index([int(pk) for pk in case_pks], name="case_pk")
    return current.reindex(index).fillna("").astype(str)


def mediator_table(engine: Engine, as_of: dt.datetime, holders: pd.Series) -> pd.DataFrame:
    """Mediators with ``capacity, languages, products, provinces``, their ``load`` (open cases
    held: ``holders`` is each open case's current mediator) and track record ``cases_worked,
    cases_settled`` at ``as_of``."""
    mediators, events = ledger.table(ledger.Mediator), ledger.table(ledger.Event)
    known = func.coalesce(events.c.received_at, events.c.at) <= as_of
    with engine.connect() as connection:
        table = pd.DataFrame(
            connection.execute(
                select(
                    mediators.c.mediator_id,
                    mediators.c.capacity,
                    mediators.c.languages,
                    mediators.c.products,
                    mediators.c.provinces,
                ).order_by(mediators.c.mediator_id)
            ).all(),
            columns=["mediator_id", "capacity", "languages", "products", "provinces"],
        )
        record = pd.DataFrame(
            connection.execute(
                select(events.c.actor, events.c.case_pk, events.c.outcome.in_(SETTLED_OUTCOMES).label("settled")).where(
                    events.c.actor != SYSTEM_ACTOR, events.c.at <= as_of, known
                )
            ).all(),
            columns=["actor", "case_pk", "settled"],
        )
    worked = record.groupby("actor")["case_pk"].nunique()
    won = record[record["settled"].astype(bool)].groupby("actor")["case_pk"].nunique()
    load = holders[holders != ""].value_counts()
    ids = table["mediator_id"]
    table["load"] = ids.map(load).fillna(0).astype(int)
    table["cases_worked"] = ids.map(worked).fillna(0).astype(int)
    table["cases_settled"] = ids.map(won).fillna(0).astype(int)
    return table


def save_assignments(engine: Engine, assigned: pd.DataFrame, policy_version: str, at: dt.datetime | None = None) -> str:
    """Record ``assigned`` (``case_pk, mediator_id, expected_recovery, reason``) as one run;
    returns the run id."""
    run_id = str(uuid.uuid4())
    moment = at or ledger.utcnow()
    rows = [
        {
            "case_pk": int(r.case_pk),
            "mediator_id": str(r.mediator_id),
            "assigned_at": moment,
            "expected_recovery": Decimal(f"{float(r.expected_recovery):.2f}"),
            "reason": str(r.reason),
            "policy_version": policy_version,
            "run_id": run_id,
        }
        for r in assigned.itertuples(index=False)
    ]
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(ledger.table(ledger.Assignment)), rows)
    return run_id


def resolve_dispute(
    engine: Engine, case_pk: int, resolved_by: str, note: str = "", at: dt.datetime | None = None
) -> None:
    """Record a supervisor's resolution of the case's disputes: contact may resume."""
    with engine.begin() as connection:
        connection.execute(
            insert(ledger.table(ledger.DisputeResolution)).values(
                case_pk=int(case_pk), resolved_at=at or ledger.utcnow(), resolved_by=resolved_by, note=note
            )
        )
