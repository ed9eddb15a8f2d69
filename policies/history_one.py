"""Contact-history facts of one case, in plain Python: the service's path, where the batch code's
pandas joins (tens of milliseconds for one case) would dominate a request.

The same facts, by the same rules, as :func:`policies.history.contact_facts` (a test compares the
two on every case of a world): events of every case of the debtor (of the case alone when the
debtor is unknown) before the decision, by channel today (Asia/Shanghai) and in the last 7 x 24
hours, the case's own attempts and actions, opt-outs, open disputes and the failed phone streak.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select

from concord import ledger
from concord.vocabulary import REACHED_OUTCOMES
from policies.catalogue import Catalogue
from policies.claims import DAY_S
from policies.facts import SHANGHAI_OFFSET_S, history_fact_names
from policies.history import PHONE_CHANNELS, WEEK_S


@dataclass(frozen=True)
class PastEvent:
    """One event as the history counts it: which case, when (epoch seconds, UTC), what, and how."""

    case_pk: int
    at_s: float
    action: str
    outcome: str
    actor: str = ""


def _epoch(value: dt.datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


@functools.cache
def _queries() -> tuple[Any, Any, Any]:
    """The one-case reads, built once (SQLAlchemy then reuses their compiled form): events of a
    debtor's cases, events of one case, a case's resolutions."""
    events, cases = ledger.table(ledger.Event), ledger.table(ledger.Case)
    as_of = bindparam("as_of", type_=events.c.at.type)
    known = and_(events.c.at <= as_of, func.coalesce(events.c.received_at, events.c.at) <= as_of)
    query = select(events.c.case_pk, events.c.at, events.c.action, events.c.outcome, events.c.actor).where(known)
    pks = select(cases.c.id).where(cases.c.debtor_key == bindparam("debtor_key")).scalar_subquery()
    resolutions = ledger.table(ledger.DisputeResolution)
    resolved = resolutions.c.resolved_at
    return (
        query.where(events.c.case_pk.in_(pks)),
        query.where(events.c.case_pk == bindparam("case_pk")),
        select(resolved).where(
            resolutions.c.case_pk == bindparam("case_pk"), resolved <= bindparam("as_of", type_=resolved.type)
        ),
    )


def ledger_events(connection: Connection, case_pk: int, debtor_key: str, as_of: dt.datetime) -> list[PastEvent]:
    """Events known at ``as_of`` of every case of the debtor (of the case alone when the debtor is
    unknown), in the ledger's order: two indexed lookups, no scan."""
    by_debtor, by_case, _ = _queries()
    if debtor_key:
        rows = connection.execute(by_debtor, {"as_of": as_of, "debtor_key": debtor_key})
    else:
        rows = connection.execute(by_case, {"as_of": as_of, "case_pk": case_pk})
    return [PastEvent(int(r.case_pk), _epoch(r.at), str(r.action), str(r.outcome), str(r.actor)) for r in rows]


def resolution_times(connection: Connection, case_pk: int, as_of: dt.datetime) -> list[float]:
    """Epoch seconds of the supervisors' dispute resolutions of the case known at ``as_of``."""
    rows = connection.execute(_queries()[2], {"case_pk": case_pk, "as_of": as_of})
    return [_epoch(r.resolved_at) for r in rows]


def _day(seconds: float) -> float:
    return math.floor((seconds + SHANGHAI_OFFSET_S) / DAY_S)


def one_case_facts(
    case_pk: int,
    decision_s: float,
    events: Iterable[PastEvent],
    catalogue: Catalogue,
    resolutions: Sequence[float] = (),
) -> dict[str, float]:
    """History facts of one case at ``decision_s`` (epoch seconds) from the debtor's ``events``."""
    channels = catalogue.contact_channels
    channel_of = {a.name: a.channel for a in catalogue.actions if a.contacts_someone and a.channel in channels}
    names = set(catalogue.names)
    counts = {
        f"{ch}_{kind}": 0.0
        for ch in channels
        for kind in ("attempts_today", "connected_today", "attempts_week", "connected_week", "attempts_ever")
    }
    opted = dict.fromkeys(channels, False)
    by_action = dict.fromkeys(catalogue.names, 0.0)
    certificates, last_dispute = 0.0, -math.inf
    phone: list[tuple[float, bool]] = []
    today = _day(decision_s)
    for event in events:
        if not event.at_s < decision_s:
            continue
        own = event.case_pk == case_pk
        channel = channel_of.get(event.action)
        if channel is not None:
            connected = event.outcome in REACHED_OUTCOMES
            if _day(event.at_s) == today:
                counts[f"{channel}_attempts_today"] += 1
                counts[f"{channel}_connected_today"] += connected
            if event.at_s > decision_s - WEEK_S:
                counts[f"{channel}_attempts_week"] += 1
                counts[f"{channel}_connected_week"] += connected
            if own:
                counts[f"{channel}_attempts_ever"] += 1
                if channel in PHONE_CHANNELS:
                    phone.append((event.at_s, event.outcome == "failed"))
            if event.outcome == "opted_out":
                opted[channel] = True
        if own:
            if event.action in names:
                by_action[event.action] += 1
            if event.outcome == "certificate_issued":
                certificates += 1
            elif event.outcome == "disputed":
                last_dispute = max(last_dispute, event.at_s)
    out: dict[str, float] = {}
    for ch in channels:
        for kind in ("attempts_today", "connected_today", "attempts_week", "connected_week", "attempts_ever"):
            out[f"{ch}_{kind}"] = counts[f"{ch}_{kind}"]
        out[f"{ch}_unanswered_today"] = counts[f"{ch}_attempts_today"] - counts[f"{ch}_connected_today"]
        out[f"opted_out_{ch}"] = float(opted[ch])
    out.update({f"count_{name}": value for name, value in by_action.items()})
    out["certificates_issued"] = certificates
    resolved = max((r for r in resolutions if r <= decision_s), default=-math.inf)
    out["dispute_open"] = float(last_dispute > resolved)
    streak = 0
    for _, failed in reversed(sorted(phone, key=lambda item: item[0])):  # stable: ties keep their order
        if not failed:
            break
        streak += 1
    out["failed_streak"] = float(streak)
    wanted = history_fact_names(channels, catalogue.names)
    return {name: out[name] for name in wanted if name in out}
