"""Funnel statistics by creditor, from the ledger: cases by stage, reach and settlement rates,
amount recovered.

A case's stage is the furthest it has gone by its events, by the same rule as the feature
``stage`` (``features/offline/case_state.py``): contacted (warning) < reached (mediation) <
agreement < litigation < paid < written off < closed; cases without an event are ``new``.
Reached and settled are the ``concord.vocabulary`` outcomes; recovered is the sum of the
amounts of paid and partial_paid events (CNY). One SQL query, grouped in the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Engine, bindparam, text

from concord.ledger import UTCDateTime
from concord.vocabulary import REACHED_OUTCOMES, SETTLED_OUTCOMES
from features.offline.schemas import CHANNELS, STAGES

_LITIGATION_ACTIONS = ("payment_order", "file_lawsuit", "enforcement")
_LITIGATION_OUTCOMES = ("order_issued", "filed", "judged")
_AGREEMENT_ACTIONS = ("notarized_agreement", "judicial_confirmation")


@dataclass
class CreditorFunnel:
    """One creditor's funnel (amounts in CNY, rates as shares of all its cases)."""

    creditor: str
    cases: int = 0
    reached: int = 0
    settled: int = 0
    recovered: float = 0.0
    by_stage: dict[str, int] = field(default_factory=dict)

    @property
    def reach_rate(self) -> float:
        return self.reached / self.cases if self.cases else 0.0

    @property
    def settle_rate(self) -> float:
        return self.settled / self.cases if self.cases else 0.0

    @property
    def settle_rate_of_reached(self) -> float:
        return self.settled / self.reached if self.reached else 0.0


def _stage_sql() -> str:
    """The stage rank of one event, highest rule first (later rules win in the feature's code)."""
    return (
        "CASE WHEN e.action = 'close' THEN 7 "
        "WHEN e.action = 'pre_check_write_off' AND e.outcome = 'certificate_issued' THEN 6 "
        "WHEN e.outcome = 'paid' THEN 5 "
        "WHEN e.action IN :litigation_actions AND e.outcome IN :litigation_outcomes THEN 4 "
        "WHEN e.outcome IN ('agreement', 'partial_paid') OR (e.action IN :agreement_actions "
        "AND e.outcome NOT IN ('failed', 'refused', 'disputed')) THEN 3 "
        "WHEN e.outcome IN :reached OR e.outcome = 'promise_to_pay' THEN 2 "
        "WHEN e.action IN :attempts THEN 1 ELSE 0 END"
    )


def funnel(engine: Engine, creditor: str | None = None, as_of: dt.datetime | None = None) -> list[CreditorFunnel]:
    """Per creditor (only ``creditor`` when given), largest first: cases, stage counts, reached,
    settled and recovered; from the events known at ``as_of`` (all when None)."""
    known = "WHERE e.at <= :as_of AND COALESCE(e.received_at, e.at) <= :as_of" if as_of is not None else ""
    sql = f"""
        WITH per_case AS (
            SELECT e.case_pk,
                   MAX({_stage_sql()}) AS stage_rank,
                   MAX(CASE WHEN e.outcome IN :reached THEN 1 ELSE 0 END) AS reached,
                   MAX(CASE WHEN e.outcome IN :settled THEN 1 ELSE 0 END) AS settled,
                   SUM(CASE WHEN e.outcome IN ('paid', 'partial_paid') THEN COALESCE(e.amount, 0) ELSE 0 END)
                       AS recovered
            FROM events e {known} GROUP BY e.case_pk)
        SELECT cr.name AS creditor, COALESCE(p.stage_rank, 0) AS stage_rank, COUNT(*) AS cases,
               SUM(COALESCE(p.reached, 0)) AS reached, SUM(COALESCE(p.settled, 0)) AS settled,
               SUM(COALESCE(p.recovered, 0)) AS recovered
        FROM cases c JOIN creditors cr ON cr.id = c.creditor_id
        LEFT JOIN per_case p ON p.case_pk = c.id
        {"WHERE cr.name = :creditor" if creditor is not None else ""}
        GROUP BY cr.name, COALESCE(p.stage_rank, 0)
    """
    attempts = sorted({action for actions in CHANNELS.values() for action in actions})
    query = text(sql).bindparams(
        *(
            bindparam(name, expanding=True)
            for name in (
                "litigation_actions",
                "litigation_outcomes",
                "agreement_actions",
                "reached",
                "settled",
                "attempts",
            )
        )
    )
    if as_of is not None:  # typed: the ledger's own timestamp format on every backend
        query = query.bindparams(bindparam("as_of", type_=UTCDateTime()))
    params: dict[str, object] = {
        "litigation_actions": list(_LITIGATION_ACTIONS),
        "litigation_outcomes": list(_LITIGATION_OUTCOMES),
        "agreement_actions": list(_AGREEMENT_ACTIONS),
        "reached": list(REACHED_OUTCOMES),
        "settled": list(SETTLED_OUTCOMES),
        "attempts": attempts,
    }
    if creditor is not None:
        params["creditor"] = creditor
    if as_of is not None:
        params["as_of"] = as_of
    out: dict[str, CreditorFunnel] = {}
    with engine.connect() as connection:
        for row in connection.execute(query, params):
            entry = out.setdefault(str(row.creditor), CreditorFunnel(str(row.creditor)))
            stage = STAGES[int(row.stage_rank)]
            entry.by_stage[stage] = entry.by_stage.get(stage, 0) + int(row.cases)
            entry.cases += int(row.cases)
            entry.reached += int(row.reached or 0)
            entry.settled += int(row.settled or 0)
            entry.recovered += float(row.recovered or 0)
    for entry in out.values():
        entry.by_stage = {stage: entry.by_stage.get(stage, 0) for stage in STAGES}
        entry.recovered = round(entry.recovered, 2)
    return sorted(out.values(), key=lambda f: (-f.cases, f.creditor))
